#!/bin/sh
# install-gateway.sh: install the Staff Control Agent Gateway on a Linux host
# with systemd (docs/operations.md "Install and start").
#
# Checks the release's signature (ed25519 over SHA256SUMS, with openssl) and
# the package's checksum before it touches anything; then creates the
# staff-gateway user and its directories, installs the binary and the systemd
# unit, writes /etc/staff-gateway/gateway.yml (mode 0600) from flags or
# prompts, enrols the gateway with its one-time provisioning token, starts the
# service and runs `staff-gateway --test-connection`.
#
# --root DIR installs into DIR instead of / (a throwaway root for tests or
# image builds): no user is created, systemctl is not run, and the gateway's
# buffer path is redirected into DIR for the enrolment and the connection test.
set -eu

PROG=install-gateway.sh
UNIT=staff-gateway.service
SVC_USER=staff-gateway

usage() {
	cat <<'EOF'
usage: install-gateway.sh [options]

  --package FILE             the gateway package (staff-gateway-VERSION-linux-ARCH.tar.gz;
                             default: the one for this machine beside this script)
  --checksums FILE           SHA256SUMS of the release (default: beside the package)
  --signature FILE           ed25519 signature of SHA256SUMS (default: CHECKSUMS.sig)
  --public-key FILE          the release signing public key, PEM (required)
  --cloud-url URL            the Agent API, e.g. https://agent-api.staff-control.com
  --organization-id N        the organisation's id
  --provisioning-token TOKEN one-time token from `staffctl gateway register`
                             (or $STAFF_GATEWAY_PROVISIONING_TOKEN, which keeps it out of ps)
  --serial SERIAL            the gateway's serial (default: the host name)
  --ca-file FILE             CA bundle for the cloud's certificate (default: the system's)
  --overwrite-config         replace an existing gateway.yml (default: keep it)
  --root DIR                 install under DIR instead of / (no user, no systemctl)
  --no-start                 do not enable or start the service
  -h, --help                 this help

Missing values are asked for when standard input is a terminal.
EOF
}

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

need_arg() {
	[ "$#" -ge 2 ] || die "$1 needs a value"
}

PACKAGE='' CHECKSUMS='' SIGNATURE='' PUBKEY='' CLOUD_URL='' ORG_ID='' SERIAL='' CA_FILE=''
TOKEN=${STAFF_GATEWAY_PROVISIONING_TOKEN:-}
ROOT='' NO_START=0 OVERWRITE=0
while [ "$#" -gt 0 ]; do
	case $1 in
	--package) need_arg "$@"; PACKAGE=$2; shift ;;
	--checksums) need_arg "$@"; CHECKSUMS=$2; shift ;;
	--signature) need_arg "$@"; SIGNATURE=$2; shift ;;
	--public-key) need_arg "$@"; PUBKEY=$2; shift ;;
	--cloud-url) need_arg "$@"; CLOUD_URL=$2; shift ;;
	--organization-id) need_arg "$@"; ORG_ID=$2; shift ;;
	--provisioning-token) need_arg "$@"; TOKEN=$2; shift ;;
	--serial) need_arg "$@"; SERIAL=$2; shift ;;
	--ca-file) need_arg "$@"; CA_FILE=$2; shift ;;
	--root) need_arg "$@"; ROOT=$2; shift ;;
	--no-start) NO_START=1 ;;
	--overwrite-config) OVERWRITE=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option $1" ;;
	esac
	shift
done

# ask VAR FLAG "question" [secret]: sets VAR from the terminal when it is
# empty (VAR is one of this script's own names).
ask() {
	eval "cur=\${$1}"
	# shellcheck disable=SC2154 # cur is set by the eval above
	[ -n "$cur" ] && return 0
	[ -t 0 ] || die "$2 is required (not given, and standard input is not a terminal to ask)"
	printf '%s: ' "$3" >&2
	if [ "${4:-}" = secret ]; then
		stty -echo 2>/dev/null || true
		IFS= read -r answer || true
		stty echo 2>/dev/null || true
		printf '\n' >&2
	else
		IFS= read -r answer || true
	fi
	[ -n "$answer" ] || die "$2: an answer is required"
	eval "$1=\$answer"
}

# plain VALUE NAME: refuses what cannot go into a double-quoted YAML string.
plain() {
	case $1 in
	*[\"\\]* | *"
"*) die "$2 must not contain quotes, backslashes or newlines" ;;
	esac
}

for tool in openssl sha256sum tar gzip mktemp; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

case $(uname -m) in
x86_64 | amd64) ARCH=amd64 ;;
aarch64 | arm64) ARCH=arm64 ;;
*) ARCH=$(uname -m) ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "$PACKAGE" ]; then
	for f in "$HERE"/staff-gateway-*-linux-"$ARCH".tar.gz; do
		[ -e "$f" ] || continue
		[ -z "$PACKAGE" ] || die "several packages beside the script; choose one with --package"
		PACKAGE=$f
	done
	[ -n "$PACKAGE" ] || die "no staff-gateway-*-linux-$ARCH.tar.gz beside the script; give --package"
fi
[ -f "$PACKAGE" ] || die "package $PACKAGE not found"
PKGDIR=$(cd "$(dirname "$PACKAGE")" && pwd)
PKGNAME=$(basename "$PACKAGE")
CHECKSUMS=${CHECKSUMS:-$PKGDIR/SHA256SUMS}
SIGNATURE=${SIGNATURE:-$CHECKSUMS.sig}
ask PUBKEY --public-key "Release signing public key (PEM file)"
for f in "$CHECKSUMS" "$SIGNATURE" "$PUBKEY"; do
	[ -f "$f" ] || die "$f not found"
done

# 1. Verify before touching anything: the signature over SHA256SUMS, then the
# package's line in it.
if ! openssl pkeyutl -verify -pubin -inkey "$PUBKEY" -rawin -in "$CHECKSUMS" -sigfile "$SIGNATURE" >/dev/null 2>&1; then
	die "the signature $SIGNATURE does not verify $CHECKSUMS with $PUBKEY: refusing to install"
fi
want=$(awk -v n="$PKGNAME" '$2 == n || $2 == "*" n { print $1 }' "$CHECKSUMS")
[ -n "$want" ] || die "$PKGNAME is not listed in $CHECKSUMS: refusing to install"
got=$(sha256sum "$PACKAGE" | awk '{ print $1 }')
[ "$want" = "$got" ] || die "$PKGNAME does not match its checksum in $CHECKSUMS: refusing to install"
say "signature and checksum of $PKGNAME verified"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM
tar -xzf "$PACKAGE" -C "$WORK"
SRC=$(find "$WORK" -mindepth 1 -maxdepth 1 -type d | head -n 1)
for f in gateway "$UNIT" gateway.yml; do
	[ -f "$SRC/$f" ] || die "the package lacks $f"
done

# 2. Values for the configuration (only when one is written).
CONF_DIR=$ROOT/etc/staff-gateway
CONF=$CONF_DIR/gateway.yml
WRITE_CONF=1
if [ -e "$CONF" ] && [ "$OVERWRITE" = 0 ]; then
	WRITE_CONF=0
	say "keeping the existing $CONF (--overwrite-config replaces it)"
else
	ask CLOUD_URL --cloud-url "Agent API URL (https://…)"
	ask ORG_ID --organization-id "Organisation id"
	ask TOKEN --provisioning-token "Provisioning token" secret
	case $CLOUD_URL in
	https://* | http://*) ;;
	*) die "--cloud-url must be an http(s) URL, not $CLOUD_URL" ;;
	esac
	case $ORG_ID in
	'' | *[!0-9]*) die "--organization-id must be a positive integer, not $ORG_ID" ;;
	esac
	plain "$CLOUD_URL" --cloud-url
	plain "$TOKEN" --provisioning-token
	plain "$SERIAL" --serial
	plain "$CA_FILE" --ca-file
fi

# 3. The user and the directories.
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
OWN=0
if [ -n "$ROOT" ]; then
	say "--root $ROOT: not creating the $SVC_USER user (systemd's unit names it; create it on the target)"
elif [ "$IS_ROOT" = 1 ]; then
	if ! id "$SVC_USER" >/dev/null 2>&1; then
		nologin=/usr/sbin/nologin
		[ -x "$nologin" ] || nologin=/bin/false
		useradd --system --user-group --no-create-home --home-dir /var/lib/staff-gateway --shell "$nologin" "$SVC_USER"
		say "created the system user $SVC_USER"
	fi
	OWN=1
else
	die "run as root (or use --root DIR)"
fi
umask 077
mkdir -p "$CONF_DIR" "$ROOT/var/lib/staff-gateway" "$ROOT/var/log/staff-gateway" \
	"$ROOT/usr/local/bin" "$ROOT/etc/systemd/system"
chmod 0750 "$CONF_DIR" "$ROOT/var/log/staff-gateway"
chmod 0700 "$ROOT/var/lib/staff-gateway"

# 4. The binary, the unit, the sample and the configuration.
BIN=$ROOT/usr/local/bin/staff-gateway
cp "$SRC/gateway" "$BIN.new"
chmod 0755 "$BIN.new"
mv -f "$BIN.new" "$BIN"
cp "$SRC/$UNIT" "$ROOT/etc/systemd/system/$UNIT"
chmod 0644 "$ROOT/etc/systemd/system/$UNIT"
cp "$SRC/gateway.yml" "$CONF_DIR/gateway.yml.example"
chmod 0640 "$CONF_DIR/gateway.yml.example"
say "installed $("$BIN" --version)"
if [ "$WRITE_CONF" = 1 ]; then
	{
		printf '# Written by install-gateway.sh; every key and its default: gateway.yml.example\n'
		printf 'server:\n  url: "%s"\n' "$CLOUD_URL"
		[ -z "$CA_FILE" ] || printf '  tls:\n    ca_file: "%s"\n' "$CA_FILE"
		printf 'organization:\n  id: %s\n  provisioning_token: "%s"\n' "$ORG_ID" "$TOKEN"
		printf 'buffer:\n  path: /var/lib/staff-gateway/buffer.sqlite\n'
		printf 'logging:\n  level: info\n  file: ""   # JSON logs to journald\n'
		[ -z "$SERIAL" ] || printf 'gateway:\n  serial: "%s"\n' "$SERIAL"
	} >"$CONF.new"
	chmod 0600 "$CONF.new"
	mv -f "$CONF.new" "$CONF"
	say "wrote $CONF (mode 0600)"
fi

# The gateway's own runs below: under --root its buffer (and key file) go
# into the root, not the host's /var/lib.
gateway() {
	if [ -n "$ROOT" ]; then
		STAFF_GATEWAY_BUFFER_PATH=$ROOT/var/lib/staff-gateway/buffer.sqlite "$BIN" --config "$CONF" "$@"
	else
		"$BIN" --config "$CONF" "$@"
	fi
}

# 5. Enrol: the provisioning token for an API key (a no-op when enrolled).
gateway --provision || die "enrolment failed: check --cloud-url and the provisioning token (docs/operations.md)"
if [ "$OWN" = 1 ]; then
	chown "$SVC_USER:$SVC_USER" "$CONF" "$ROOT/var/lib/staff-gateway" "$ROOT/var/log/staff-gateway"
	chown -R "$SVC_USER:$SVC_USER" "$ROOT/var/lib/staff-gateway"
	chgrp "$SVC_USER" "$CONF_DIR"
fi

# 6. Start the service.
if [ -n "$ROOT" ] || [ "$NO_START" = 1 ]; then
	say "not starting the service (--root or --no-start); later: systemctl enable --now $UNIT"
else
	systemctl daemon-reload
	systemctl enable --now "$UNIT"
	say "started $UNIT"
fi

# 7. The connection test.
if ! gateway --test-connection; then
	die "the connection test failed (journalctl -u $UNIT shows the gateway's log)"
fi
say "done"
