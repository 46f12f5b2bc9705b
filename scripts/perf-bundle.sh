#!/usr/bin/env bash
# Packs this machine's `perf` with the shared libraries it loads (glibc's excepted) into one
# folder, for profiling on the lent 16-core machine, which has no package manager:
#   scripts/perf-bundle.sh .perf-bundle     then, there: .perf-bundle/perf record ...
# Carry it beside .device-bin and .redis-bundle (64 MiB in all: perf's part is about 30).
# Symbols: strip the server with --strip-debug (not a full strip) so its functions have names.
set -euo pipefail
out=${1:?usage: perf-bundle.sh OUTDIR}
binary=$(readlink -f "$(command -v perf)")
rm -rf "$out"
mkdir -p "$out/lib"
cp -L "$binary" "$out/perf.bin"
# glibc and the loader come from the machine the bundle runs on.
system='^(linux-vdso|ld-linux|libc\.so|libm\.so|libmvec|libpthread|libdl\.so|librt\.so|libresolv|libutil|libanl|libnsl|libthread_db|libnss_)'
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
    if ! [[ $name =~ $system ]]; then
        cp -L "$path" "$out/lib/$name"
    fi
done
if LD_LIBRARY_PATH="$out/lib" ldd "$out/perf.bin" | grep -q 'not found'; then
    echo "perf-bundle.sh: a library is missing from the bundle" >&2
    exit 1
fi
cat >"$out/perf" <<'RUN'
#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd -P)
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/perf.bin" "$@"
RUN
chmod +x "$out/perf"
du -sh "$out"
