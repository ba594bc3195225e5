# Print the files FILES names (words, each a path or a glob, expanded here, on the host): for each
# regular file, "@@file PATH" and then its content in base64 on one line. Then "@@addr IFACE CIDR"
# for every address of the host (IPv4, and IPv6 but link-local). Reads only (hakeep import).
# shellcheck disable=SC2086  # FILES is split and its globs expanded on purpose
for f in $FILES; do
    [ -f "$f" ] || continue
    printf '@@file %s\n' "$f"
    base64 -w0 < "$f" || exit 1
    echo
done
ip -o addr show | while read -r _ iface _ cidr _; do
    case "$cidr" in fe80:*|FE80:*) continue ;; esac
    printf '@@addr %s %s\n' "$iface" "$cidr"
done
