#!/usr/bin/env bash
# Installs the Debian 12 packages Skein needs to build, run and test.
# Idempotent and quiet: prints nothing and touches nothing when all are present.
set -euo pipefail

PKGS=(
	# build
	build-essential cmake pkg-config clang libclang-rt-14-dev
	# product libraries (docs/dependencies.md says why each)
	libuv1-dev libnanomsg-dev libprotobuf-c-dev protobuf-c-compiler
	libhiredis-dev libssl-dev libsofia-sip-ua-dev libxml2-dev libjemalloc-dev
	# run: the embedded Redis of `skein up`; openssl makes its self-signed TLS pair
	redis-server redis-tools openssl
	# test: SIP peers nobody here wrote (sipp, baresip) and the Kamailio reference
	libcmocka-dev nanomsg-utils python3 curl procps iproute2 cppcheck
	sip-tester baresip-core baresip kamailio dnsmasq-base
	# test: the shipped fail2ban filter against real edge logs (fail2ban-regex,
	# tests/integration/test_fail2ban_filter.py)
	fail2ban
	# test: the TLS policy check (tests/integration/test_edge_tls_policy.py)
	sslscan
	# test: the scanners every SIP server on the Internet meets, svmap, svwar and
	# svcrack (tests/integration/test_sipvicious.py)
	sipvicious
	# test: a real browser for JsSIP over WebSocket (playwright-core and jssip come
	# from npm into the build tree, tests/integration/browserlib.py)
	chromium fonts-liberation nodejs
)

# npm comes with nodesource's nodejs; Debian's own nodejs needs the npm package.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
APT=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
# Refresh the lists only when a package is unknown to apt (fresh image).
if ! $SUDO apt-get "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/tmp/skein-apt.log 2>&1; then
	$SUDO apt-get "${APT[@]}" update -qq >>/tmp/skein-apt.log 2>&1
	$SUDO apt-get "${APT[@]}" install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/skein-apt.log 2>&1 ||
		{ echo "install-deps: apt-get failed, see /tmp/skein-apt.log" >&2; tail -20 /tmp/skein-apt.log >&2; exit 1; }
fi
