# Print the files FILES names (words, each a path or a glob, expanded here, on the host): for each
# regular file, "@@file PATH" and then its content in base64 on one line. Then "@@addr IFACE CIDR"
# for every IPv4 address of the host. Reads only (hakeep import).
# shellcheck disable=SC2086  # FILES is split and its globs expanded on purpose
for f in $FILES; do
    [ -f "$f" ] || continue
    printf '@@file %s\n' "$f"
    base64 -w0 < "$f" || exit 1
    echo
done
ip -o -4 addr show | while read -r _ iface _ cidr _; do
    printf '@@addr %s %s\n' "$iface" "$cidr"
done
