# shellcheck shell=sh
# Stop commands hakeep gave up on or was interrupted in: every process of each (hk_stop_groups).
# Exits 0 once none of them is left (or none ran). Variables: FILES (their step files).
set --
for f in $FILES; do set -- "$@" "$f"; done
hk_stop_groups "$@"
