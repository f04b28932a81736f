#!/usr/bin/env bash
# Makes PREFIX/include/onnxruntime/ (onnxruntime's C and C++ API headers) and PREFIX/lib/
# (libonnxruntime.so) for building onnx_run, from package registries only:
#  - the headers from Debian's libonnxruntime-dev (suite $ORT_DEBIAN_SUITE, default trixie),
#    downloaded with apt-get into a private apt state under PREFIX (the system's apt sources are
#    not changed, nothing is installed) and unpacked with dpkg-deb;
#  - the library from the onnxruntime wheel on PyPI (its onnxruntime/capi/ folder): the one
#    installed for PYTHON if it has it, else a wheel fetched with `PYTHON -m pip download`.
# onnxruntime's C API is backward compatible: a library at least as new as the headers runs a
# program built with them (the script checks that). A step whose result is already in PREFIX
# is skipped, so a second run costs nothing.
#
#   usage: get_onnxruntime.sh PREFIX [PYTHON]
set -euo pipefail
prefix=${1:?usage: get_onnxruntime.sh PREFIX [PYTHON]}
python=${2:-python3}
suite=${ORT_DEBIAN_SUITE:-trixie}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- headers ------------------------------------------------------------------------------------
if [ ! -f "$prefix/include/onnxruntime/onnxruntime_cxx_api.h" ]; then
    apt_dir="$prefix/.apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
         "http://deb.debian.org/debian $suite main" > "$apt_dir/sources.list"
    apt_opts=(-q -o "Dir::Etc::SourceList=$apt_dir/sources.list"
              -o "Dir::Etc::SourceParts=$apt_dir/none" -o "Dir::State::Lists=$apt_dir/lists"
              -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1")
    apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
    (cd "$work" && apt-get "${apt_opts[@]}" download libonnxruntime-dev) >>"$work/apt.log" 2>&1 \
        || { cat "$work/apt.log" >&2; exit 1; }
    dpkg-deb -x "$work"/libonnxruntime-dev_*.deb "$work/deb"
    mkdir -p "$prefix/include" "$prefix/share/doc/libonnxruntime-dev"
    rm -rf "$prefix/include/onnxruntime"
    cp -r "$work/deb/usr/include/onnxruntime" "$prefix/include/onnxruntime"
    cp "$work/deb/usr/share/doc/libonnxruntime-dev/copyright" "$prefix/share/doc/libonnxruntime-dev/"
    rm -rf "$apt_dir"
fi
api=$(sed -n 's/^#define ORT_API_VERSION \([0-9]*\).*/\1/p' \
      "$prefix/include/onnxruntime/onnxruntime_c_api.h")

# ---- library ------------------------------------------------------------------------------------
if [ ! -e "$prefix/lib/libonnxruntime.so" ]; then
    capi=$("$python" -c 'import importlib.util as u, os; s = u.find_spec("onnxruntime")
print(os.path.join(s.submodule_search_locations[0], "capi") if s else "")' 2>/dev/null || true)
    if [ -z "$capi" ] || ! compgen -G "$capi/libonnxruntime.so.*" >/dev/null; then
        "$python" -m pip download -q --no-deps --only-binary :all: -d "$work/wheel" onnxruntime
        "$python" -m zipfile -e "$work"/wheel/onnxruntime-*.whl "$work/wheel/x"
        capi="$work/wheel/x/onnxruntime/capi"
    fi
    lib=$(ls "$capi"/libonnxruntime.so.*.*.* | head -n1)
    name=$(basename "$lib")
    mkdir -p "$prefix/lib"
    cp "$lib" "$prefix/lib/$name"
    ln -sf "$name" "$prefix/lib/libonnxruntime.so.1"
    ln -sf "$name" "$prefix/lib/libonnxruntime.so"
fi
version=$(basename "$(readlink "$prefix/lib/libonnxruntime.so")")
version=${version#libonnxruntime.so.}
minor=$(echo "$version" | cut -d. -f2)
if [ "$(echo "$version" | cut -d. -f1)" -ne 1 ] || [ "$minor" -lt "$api" ]; then
    echo "get_onnxruntime.sh: library $version is older than the headers (API $api)" >&2
    exit 1
fi
echo "onnxruntime in $prefix: headers of API version $api, library $version"
