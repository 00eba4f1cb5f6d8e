#!/usr/bin/env bash
# Cross-compiles edge-mrcnn for aarch64 Linux as one fully static, stripped executable.
#
#   bash cross/build-aarch64.sh            # SDK (cached) + static release build + strip + checks
#
# 1. Builds, once, an aarch64 Swift SDK artifact bundle from Debian arm64 packages (C sysroot from
#    trixie, the static Swift runtime from sid's swiftlang) and caches it OUTSIDE the repository in
#    ${EDGE_MRCNN_CROSS_CACHE:-$HOME/.cache/edge-mrcnn-cross}, keyed by a stamp of the Debian package
#    versions chosen, the host Swift version and this recipe's version. Later runs reuse it without
#    touching the network; EDGE_MRCNN_CROSS_REFRESH=1 re-resolves the package versions (a new
#    stamp builds a new SDK beside the old one).
# 2. swift build -c release for the SDK, statically (--static-swift-stdlib -static-executable),
#    scratch path .build-aarch64; strips a copy to .build-aarch64/edge-mrcnn-aarch64.
# 3. Checks with `file` that it is a statically linked ARM aarch64 executable and that it is at
#    most EDGE_MRCNN_MAX_MB (default 12) MB stripped.
#
# Host: x86_64 Debian with the Swift toolchain on PATH; run as root (or with sudo available) the
# first time so missing tools can be installed with apt-get. The host's own apt/dpkg architecture
# configuration is never changed: the arm64 packages are fetched through a private APT_CONFIG and
# only unpacked (dpkg-deb -x), never installed.
set -euo pipefail

RECIPE_VERSION=2   # bump when the SDK layout produced below changes
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EDGE_MRCNN_CROSS_CACHE:-$HOME/.cache/edge-mrcnn-cross}"
SCRATCH="${EDGE_MRCNN_CROSS_SCRATCH:-$ROOT/.build-aarch64}"
PRODUCT=edge-mrcnn
OUT_BIN="$SCRATCH/$PRODUCT-aarch64"
MAX_MB="${EDGE_MRCNN_MAX_MB:-12}"
TRIPLE=aarch64-unknown-linux-gnu
SDK_ID=edge-mrcnn-aarch64
DEBIAN_MIRROR="${EDGE_MRCNN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# C sysroot packages (trixie, arm64). linux-libc-dev is Architecture: all in trixie.
SYSROOT_PKGS=(libc6 libc6-dev libgcc-s1 libgcc-14-dev libstdc++6 libstdc++-14-dev linux-libc-dev
              libjpeg62-turbo libjpeg62-turbo-dev)
SWIFT_SUITES="${EDGE_MRCNN_SWIFT_SUITES:-sid trixie}"   # where to look for swiftlang, in order
SWIFT_PKG=swiftlang   # from sid (6.2.x; else trixie); only usr/libexec/swift/lib/swift_static is used

log()  { printf '[cross] %s\n' "$*" >&2; }
die()  { printf '[cross] ERROR: %s\n' "$*" >&2; exit 1; }
now()  { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T_START=$(now)

# ---------------------------------------------------------------------------------------------
# Host tools
# ---------------------------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
APT_UPDATED=0
need_pkg() {   # need_pkg COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2 (for $1)"
    if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq >&2 || die "apt-get update failed"; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$2" >&2 \
        || die "cannot install $2 (needed for $1)"
}
need_pkg file file
need_pkg dpkg-deb dpkg
need_pkg apt-get apt
need_pkg sha256sum coreutils
command -v swift >/dev/null 2>&1 || die "swift is not on PATH (the host Swift toolchain is required)"

SWIFT_BIN_DIR="$(dirname "$(readlink -f "$(command -v swiftc)")")"
TOOLCHAIN_USR="$(cd "$SWIFT_BIN_DIR/.." && pwd)"
SWIFT_FRONTEND="$SWIFT_BIN_DIR/swift-frontend"
[ -x "$SWIFT_FRONTEND" ] || die "no swift-frontend next to swiftc in $SWIFT_BIN_DIR"
[ -x "$SWIFT_BIN_DIR/ld.lld" ] || die "no ld.lld in $SWIFT_BIN_DIR (the toolchain's lld is used to link)"
CLANG_RES="$(ls -d "$TOOLCHAIN_USR"/lib/clang/* 2>/dev/null | sort -V | tail -n1)"
[ -n "$CLANG_RES" ] && [ -d "$CLANG_RES/include" ] || die "no clang resource dir under $TOOLCHAIN_USR/lib/clang"
HOST_SWIFT_VERSION="$(swiftc --version 2>/dev/null | head -n1)"

# A strip that understands aarch64 ELF: the toolchain's llvm-strip/llvm-objcopy, else binutils.
find_strip() {
    local c
    for c in "$SWIFT_BIN_DIR/llvm-strip" "$(command -v llvm-strip || true)"; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return; }
    done
    for c in "$SWIFT_BIN_DIR/llvm-objcopy" "$(command -v llvm-objcopy || true)"; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c --strip-all"; return; }
    done
    command -v aarch64-linux-gnu-strip >/dev/null 2>&1 && { echo aarch64-linux-gnu-strip; return; }
    need_pkg aarch64-linux-gnu-strip binutils-aarch64-linux-gnu
    echo aarch64-linux-gnu-strip
}

# ---------------------------------------------------------------------------------------------
# Private apt for arm64 trixie + sid (host apt/dpkg configuration untouched)
# ---------------------------------------------------------------------------------------------
APTDIR="$CACHE/apt"
setup_private_apt() {
    mkdir -p "$APTDIR"/{etc/preferences.d,etc/sources.list.d,etc/apt.conf.d,lists/partial,archives/partial,state}
    : > "$APTDIR/state/status"
    local kr=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$kr" ] || need_pkg gpgv debian-archive-keyring
    cat > "$APTDIR/etc/sources.list" <<EOF
deb [arch=arm64 signed-by=$kr] $DEBIAN_MIRROR trixie main
deb [arch=arm64 signed-by=$kr] $DEBIAN_MIRROR sid main
EOF
    cat > "$APTDIR/apt.conf" <<EOF
Dir::Etc "$APTDIR/etc";
Dir::Etc::SourceList "$APTDIR/etc/sources.list";
Dir::Etc::SourceParts "$APTDIR/etc/sources.list.d";
Dir::Etc::Preferences "$APTDIR/etc/preferences";
Dir::Etc::PreferencesParts "$APTDIR/etc/preferences.d";
Dir::Etc::Parts "$APTDIR/etc/apt.conf.d";
Dir::State "$APTDIR/state";
Dir::State::Lists "$APTDIR/lists";
Dir::State::status "$APTDIR/state/status";
Dir::Cache "$APTDIR/cache";
Dir::Cache::Archives "$APTDIR/archives";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Default-Release "trixie";
APT::Get::AllowUnauthenticated "false";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Debug::NoLocking "true";
APT::Sandbox::User "root";
Acquire::Check-Valid-Until "false";
EOF
    # The cache usually lives in a home the _apt sandbox user cannot enter: download as ourselves.
    # Valid-Until is not checked: the Debian archive reached from here may be a dated snapshot.
    mkdir -p "$APTDIR/cache"
}
papt() { APT_CONFIG="$APTDIR/apt.conf" "$@"; }

# Version apt would choose: trixie for the sysroot packages, sid for swiftlang.
candidate_version() {   # candidate_version PKG SUITE
    papt apt-cache madison "$1" 2>/dev/null \
        | awk -F'|' -v s=" $2/" '$3 ~ s && $3 ~ /arm64|all/ { gsub(/ /, "", $2); print $2; exit }'
}

resolve_versions() {
    log "resolving arm64 package versions (trixie + sid) with a private apt configuration"
    papt apt-get update -qq >&2 || die "apt-get update (private arm64 config in $APTDIR) failed: is $DEBIAN_MIRROR reachable?"
    local p v
    : > "$APTDIR/versions.new"
    for p in "${SYSROOT_PKGS[@]}"; do
        v="$(candidate_version "$p" trixie)"
        [ -n "$v" ] || die "no arm64 version of $p in trixie"
        echo "$p=$v" >> "$APTDIR/versions.new"
    done
    # sid's swiftlang (6.2.x) is preferred; trixie's (6.0.x) works too (see the -licu fix below).
    local suite
    v=""
    for suite in $SWIFT_SUITES; do
        v="$(candidate_version "$SWIFT_PKG" "$suite")"
        [ -z "$v" ] || break
        log "no arm64 $SWIFT_PKG in $suite"
    done
    [ -n "$v" ] || die "no arm64 version of $SWIFT_PKG in: $SWIFT_SUITES"
    echo "$SWIFT_PKG=$v" >> "$APTDIR/versions.new"
    mv "$APTDIR/versions.new" "$APTDIR/versions"
}

# ---------------------------------------------------------------------------------------------
# SDK bundle
# ---------------------------------------------------------------------------------------------
build_sdk() {   # build_sdk STAMP VERSIONS-FILE
    local stamp="$1" versions="$2"
    local final="$CACHE/sdks/$stamp"
    local work="$CACHE/sdks/.tmp-$stamp-$$"
    local bundle="$work/$SDK_ID.artifactbundle"
    local sdkdir="$bundle/$SDK_ID/$TRIPLE"
    local sysroot="$sdkdir/sysroot"
    rm -rf "$work"; mkdir -p "$sysroot"
    trap 'rm -rf "'"$work"'"' EXIT

    # 1. download the .debs (exact versions chosen above)
    local specs=() line
    while IFS= read -r line; do specs+=("$line"); done < "$versions"
    log "downloading ${#specs[@]} arm64 .debs"
    (cd "$APTDIR/archives" && papt apt-get download -qq "${specs[@]}" >&2) \
        || die "apt-get download failed for: ${specs[*]}"

    # 2. C sysroot
    local deb p v
    for line in "${specs[@]}"; do
        p="${line%%=*}"; v="${line#*=}"
        [ "$p" = "$SWIFT_PKG" ] && continue
        deb="$(ls "$APTDIR/archives/${p}_${v//:/%3a}_"*.deb 2>/dev/null | head -n1)"
        [ -n "$deb" ] || die "downloaded .deb for $p $v not found in $APTDIR/archives"
        dpkg-deb -x "$deb" "$sysroot"
    done
    [ -e "$sysroot/lib" ] || ln -s usr/lib "$sysroot/lib"
    [ -f "$sysroot/usr/lib/aarch64-linux-gnu/libjpeg.a" ] || die "libjpeg.a missing from the sysroot (libjpeg62-turbo-dev:arm64)"
    [ -f "$sysroot/usr/lib/aarch64-linux-gnu/libc.a" ] || die "libc.a missing from the sysroot (libc6-dev:arm64)"

    # 3. static Swift runtime from swiftlang:arm64
    v="$(grep "^$SWIFT_PKG=" "$versions" | cut -d= -f2-)"
    deb="$(ls "$APTDIR/archives/${SWIFT_PKG}_${v//:/%3a}_"*.deb 2>/dev/null | head -n1)"
    [ -n "$deb" ] || die "downloaded .deb for $SWIFT_PKG $v not found"
    log "extracting swift_static from $(basename "$deb")"
    local ext="$work/swiftlang"
    mkdir -p "$ext"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$ext" --wildcards './usr/libexec/swift/lib/swift_static/*' \
        || die "cannot extract usr/libexec/swift/lib/swift_static from $deb"
    local ss="$sysroot/usr/lib/swift_static"
    mv "$ext/usr/libexec/swift/lib/swift_static" "$ss"
    rm -rf "$ext"
    [ -d "$ss/linux" ] || die "unexpected swift_static layout in $deb (no linux/)"
    rm -rf "$ss/clang"; ln -s "$CLANG_RES" "$ss/clang"   # arm_neon.h & co. from the host clang
    # Older runtimes (6.0.x) list ICU libraries the sysroot does not have; the stdlib needs none.
    local lnk
    for lnk in "$ss"/linux/static-executable-args.lnk "$ss"/linux/static-stdlib-args.lnk; do
        if [ -f "$lnk" ]; then sed -i '/^-licu/d' "$lnk"; fi
    done

    # 4. drop what ships binary-only (it would make canImport(Foundation) true and then fail)
    rm -rf "$ss"/linux/Foundation*.swiftmodule "$ss"/linux/_FoundationCollections.swiftmodule \
           "$ss"/linux/FoundationEssentials.swiftmodule "$ss"/linux/FoundationInternationalization.swiftmodule \
           "$ss"/linux/XCTest.swiftmodule "$ss"/linux/Testing.swiftmodule "$ss"/linux/*/Dispatch.swift* \
           "$ss"/linux/Dispatch.swiftmodule "$ss"/linux/DispatchIntrospection.swiftmodule \
           "$ss"/linux/lib*Foundation*.a "$ss"/linux/libCoreFoundation.a "$ss"/linux/lib_CF*.a \
           "$ss"/linux/libswiftDispatch.a "$ss"/linux/libXCTest.a "$ss"/linux/libTesting.a \
           "$ss"/CoreFoundation "$ss"/_FoundationCShims "$ss"/_foundation_unicode
    # (libdispatch.a and its headers stay: static-executable-args.lnk links -ldispatch.)
    # 5. rebuild every stdlib module that has a textual interface with the host frontend
    rebuild_modules "$sysroot" "$ss" "$work/modcache"
    rm -rf "$work/modcache"

    # 6. artifact bundle metadata
    cat > "$bundle/info.json" <<EOF
{
  "schemaVersion": "1.0",
  "artifacts": {
    "$SDK_ID": {
      "type": "swiftSDK",
      "version": "$stamp",
      "variants": [ { "path": "$SDK_ID/$TRIPLE" } ]
    }
  }
}
EOF
    cat > "$sdkdir/swift-sdk.json" <<EOF
{
  "schemaVersion": "4.0",
  "targetTriples": {
    "$TRIPLE": {
      "sdkRootPath": "sysroot",
      "swiftResourcesPath": "sysroot/usr/lib/swift_static",
      "swiftStaticResourcesPath": "sysroot/usr/lib/swift_static",
      "toolsetPaths": ["toolset.json"]
    }
  }
}
EOF
    cat > "$sdkdir/toolset.json" <<EOF
{
  "schemaVersion": "1.0",
  "rootPath": "$SWIFT_BIN_DIR",
  "swiftCompiler": { "extraCLIOptions": ["-use-ld=lld"] },
  "linker": { "path": "ld.lld" }
}
EOF
    cp "$versions" "$bundle/debian-versions.txt"
    echo "$HOST_SWIFT_VERSION" > "$bundle/host-swift-version.txt"
    echo "$RECIPE_VERSION" > "$bundle/recipe-version.txt"
    rm -rf "$final"; mkdir -p "$CACHE/sdks"
    mv "$work" "$final"
    trap - EXIT
    rm -f "$APTDIR"/archives/*.deb   # ~500 MB of swiftlang; the SDK keeps what it needs
}

rebuild_modules() {   # rebuild_modules SYSROOT SWIFT_STATIC MODULE_CACHE
    local sysroot="$1" ss="$2" mcache="$3"
    local ifaces=() f
    while IFS= read -r f; do ifaces+=("$f"); done < <(find "$ss/linux" -name "$TRIPLE.swiftinterface" | sort)
    [ "${#ifaces[@]}" -gt 0 ] || die "no $TRIPLE.swiftinterface files under $ss/linux"
    # Binary modules built by 6.2.x are refused by the host compiler: drop all of them first.
    find "$ss/linux" -name "$TRIPLE.swiftmodule" -type f -delete
    log "rebuilding ${#ifaces[@]} stdlib modules from .swiftinterface with $(basename "$SWIFT_FRONTEND") ($HOST_SWIFT_VERSION)"
    mkdir -p "$mcache"
    # Dependencies are resolved through the interfaces themselves (implicit module builds go to
    # the module cache), so the order only matters for speed; Swift first.
    local pending=() done_any m dir out extra errs=0
    for f in "${ifaces[@]}"; do
        case "$f" in */Swift.swiftmodule/*) pending=("$f" "${pending[@]}") ;; *) pending+=("$f") ;; esac
    done
    for f in "${pending[@]}"; do
        dir="$(dirname "$f")"; m="$(basename "$dir" .swiftmodule)"
        out="$dir/$TRIPLE.swiftmodule"
        extra=()
        [ "$m" = Swift ] && extra=(-parse-stdlib)
        if ! "$SWIFT_FRONTEND" -compile-module-from-interface "$f" -module-name "$m" \
                -target "$TRIPLE" -sdk "$sysroot" -resource-dir "$ss" \
                -module-cache-path "$mcache" -O "${extra[@]}" -o "$out" 2> "$mcache/$m.err"; then
            log "  cannot rebuild $m; removing it from the SDK ($(head -n1 "$mcache/$m.err"))"
            rm -rf "$dir"
            errs=$((errs + 1))
        fi
    done
    for m in Swift _Concurrency SwiftOnoneSupport Glibc; do
        [ -f "$ss/linux/$m.swiftmodule/$TRIPLE.swiftmodule" ] || die "stdlib module $m could not be rebuilt (see above)"
    done
    log "  $(( ${#ifaces[@]} - errs )) modules rebuilt, $errs dropped"
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
mkdir -p "$CACHE"
setup_private_apt
CURRENT="$CACHE/current-stamp"
STAMP=""
if [ "${EDGE_MRCNN_CROSS_REFRESH:-0}" != 1 ] && [ -f "$CURRENT" ]; then
    STAMP="$(cat "$CURRENT")"
    if [ -f "$CACHE/sdks/$STAMP/$SDK_ID.artifactbundle/info.json" ] \
       && [ "$(cat "$CACHE/sdks/$STAMP/$SDK_ID.artifactbundle/host-swift-version.txt" 2>/dev/null)" = "$HOST_SWIFT_VERSION" ] \
       && [ "$(cat "$CACHE/sdks/$STAMP/$SDK_ID.artifactbundle/recipe-version.txt" 2>/dev/null)" = "$RECIPE_VERSION" ]; then
        log "using cached SDK $CACHE/sdks/$STAMP (EDGE_MRCNN_CROSS_REFRESH=1 re-resolves package versions)"
    else
        STAMP=""
    fi
fi
if [ -z "$STAMP" ]; then
    T0=$(now)
    resolve_versions
    STAMP="$( { echo "recipe=$RECIPE_VERSION"; echo "host=$HOST_SWIFT_VERSION"; echo "toolchain=$SWIFT_BIN_DIR";
                cat "$APTDIR/versions"; } | sha256sum | cut -c1-16)"
    if [ -f "$CACHE/sdks/$STAMP/$SDK_ID.artifactbundle/info.json" ]; then
        log "SDK for these package versions already cached: $CACHE/sdks/$STAMP"
    else
        log "building aarch64 Swift SDK $STAMP:"; sed 's/^/[cross]   /' "$APTDIR/versions" >&2
        build_sdk "$STAMP" "$APTDIR/versions"
        log "SDK built in $(since "$T0") s: $CACHE/sdks/$STAMP"
    fi
    echo "$STAMP" > "$CURRENT"
fi
SDKS_PATH="$CACHE/sdks/$STAMP"

# A scratch dir built against another SDK is stale: start it over.
mkdir -p "$SCRATCH"
if [ -f "$SCRATCH/.sdk-stamp" ] && [ "$(cat "$SCRATCH/.sdk-stamp")" != "$STAMP" ]; then
    log "SDK changed since the last build in $SCRATCH: cleaning it"
    rm -rf "$SCRATCH"; mkdir -p "$SCRATCH"
fi
echo "$STAMP" > "$SCRATCH/.sdk-stamp"

log "swift build -c release for $TRIPLE (static) in $SCRATCH"
T0=$(now)
(cd "$ROOT" && swift build -c release --product "$PRODUCT" \
    --swift-sdks-path "$SDKS_PATH" --swift-sdk "$SDK_ID" \
    --scratch-path "$SCRATCH" \
    --static-swift-stdlib -Xswiftc -static-executable) \
    || die "aarch64 build failed (see the compiler output above)"
log "aarch64 release build took $(since "$T0") s"

BIN="$(cd "$ROOT" && swift build -c release --product "$PRODUCT" --swift-sdks-path "$SDKS_PATH" \
        --swift-sdk "$SDK_ID" --scratch-path "$SCRATCH" --static-swift-stdlib -Xswiftc -static-executable \
        --show-bin-path 2>/dev/null)/$PRODUCT"
[ -x "$BIN" ] || die "built binary not found at $BIN"

STRIP="$(find_strip)"
cp "$BIN" "$OUT_BIN.tmp"
$STRIP "$OUT_BIN.tmp" || die "strip ($STRIP) failed on $BIN"
mv "$OUT_BIN.tmp" "$OUT_BIN"

INFO="$(file -b "$OUT_BIN")"
log "file: $INFO"
case "$INFO" in *ELF*64-bit*ARM\ aarch64*) ;; *) die "$OUT_BIN is not an ARM aarch64 ELF: $INFO" ;; esac
case "$INFO" in *statically\ linked*|*static-pie\ linked*) ;; *) die "$OUT_BIN is not statically linked: $INFO" ;; esac
case "$INFO" in *interpreter*) die "$OUT_BIN has an ELF interpreter (dynamic): $INFO" ;; esac
SIZE=$(stat -c %s "$OUT_BIN")
SIZE_MB=$(awk -v s="$SIZE" 'BEGIN { printf "%.2f", s / 1048576 }')
log "stripped size: $SIZE bytes ($SIZE_MB MiB; unstripped $(stat -c %s "$BIN") bytes)"
if [ "$SIZE" -gt $((MAX_MB * 1024 * 1024)) ]; then
    die "stripped binary is $SIZE_MB MiB, over the $MAX_MB MiB limit"
fi
log "OK: $OUT_BIN (total $(since "$T_START") s)"
echo "$OUT_BIN"
