#!/bin/bash
# Regenerates the clear-text SMTP test captures in this directory.
#
# Run as root on Debian 12:  bash pcaps/smtp/make.sh [NAME...]
# With no NAME every capture is made; a NAME (e.g. s1, bdat, derived) makes
# only that one (the derived files need s1 and s4 to exist).
#
# Real servers (Postfix, aiosmtpd via labsmtpd.py, dnsmasq) and real clients
# (swaks, Python smtplib, labclient.py) talk over a veth pair between two
# network namespaces; tcpdump records the server end. Only 10.25.0.1/2 and
# fd00:25::1/2 are ever used. Everything is torn down on exit; with
# MXC_SMTP_KEEP=1 the work directory (server and client logs) is kept.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
CLI=mxc-cli
SRV=mxc-srv
CDEV=mxc-c0
SDEV=mxc-s0
C4=10.25.0.1
S4=10.25.0.2
C6=fd00:25::1
S6=fd00:25::2
# Leave out IPv6 router solicitations and MLD reports (hop-by-hop header):
# interface noise that has nothing to do with the SMTP sessions.
FILTER='not ip6 proto 0 and not (icmp6 and ip6[40] == 133)'
export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'make.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

WANT=("$@")
want() {
    [ ${#WANT[@]} -eq 0 ] && return 0
    local w
    for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

# ---------------------------------------------------------------- packages
PKGS=(postfix swaks libio-socket-inet6-perl libnet-ssleay-perl tcpdump tshark
      wireshark-common tcpreplay python3-aiosmtpd python3-scapy dnsmasq-base
      iproute2 ethtool openssl)
install_deps() {
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    local apt=(apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends)
    if ! "${apt[@]}" "${PKGS[@]}" >&2; then
        apt-get -o DPkg::Lock::Timeout=600 update >&2
        "${apt[@]}" "${PKGS[@]}" >&2
    fi
}

# ---------------------------------------------------------------- teardown
WORK=
PIDS=()
PF_DIR=
cleanup() {
    set +e
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    PIDS=()
    [ -n "$PF_DIR" ] && postfix_stop
    ip netns del "$CLI" 2>/dev/null
    ip netns del "$SRV" 2>/dev/null
    ip link del "$CDEV" 2>/dev/null
    rm -rf "/etc/netns/$CLI" "/etc/netns/$SRV"
    if [ -n "$WORK" ] && [ "${MXC_SMTP_KEEP:-0}" = 1 ]; then
        say "work directory kept: $WORK"
    elif [ -n "$WORK" ]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- network
setup_net() {
    say "network namespaces $CLI <-> $SRV"
    ip netns del "$CLI" 2>/dev/null || true
    ip netns del "$SRV" 2>/dev/null || true
    ip link del "$CDEV" 2>/dev/null || true
    ip netns add "$CLI"
    ip netns add "$SRV"
    local ns dev
    for ns in "$CLI" "$SRV"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.router_solicitations=0 \
            net.ipv6.conf.default.accept_ra=0 net.ipv6.conf.default.accept_dad=0
        ip -n "$ns" link set lo up
    done
    ip link add name "$CDEV" type veth peer name "$SDEV"
    ip link set "$CDEV" netns "$CLI"
    ip link set "$SDEV" netns "$SRV"
    ip -n "$CLI" link set "$CDEV" address 0e:25:00:00:00:01 mtu 1500
    ip -n "$SRV" link set "$SDEV" address 0e:25:00:00:00:02 mtu 1500
    ip -n "$CLI" addr add "$C4/24" dev "$CDEV"
    ip -n "$SRV" addr add "$S4/24" dev "$SDEV"
    ip -n "$CLI" -6 addr add "$C6/64" dev "$CDEV" nodad
    ip -n "$SRV" -6 addr add "$S6/64" dev "$SDEV" nodad
    for ns in "$CLI:$CDEV" "$SRV:$SDEV"; do
        dev=${ns#*:}; ns=${ns%%:*}
        # Real MTU-sized segments and correct checksums on the wire.
        ip netns exec "$ns" ethtool -K "$dev" tx off tso off gso off gro off >/dev/null 2>&1 ||
            ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off
        ip -n "$ns" link set "$dev" up
    done
    mkdir -p "/etc/netns/$CLI" "/etc/netns/$SRV"
    printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$S4" >"/etc/netns/$CLI/resolv.conf"
    printf 'nameserver %s\noptions timeout:2 attempts:1\n' "$S4" >"/etc/netns/$SRV/resolv.conf"
    printf '127.0.0.1 localhost\n%s client.testlab.example\n' "$C4" >"/etc/netns/$CLI/hosts"
    printf '127.0.0.1 localhost\n%s mx.testlab.example\n' "$S4" >"/etc/netns/$SRV/hosts"
    # Prefer IPv4 when a name has both A and AAAA records (swaks tries only
    # the first address it gets).
    printf 'precedence ::ffff:0:0/96 100\n' >"/etc/netns/$CLI/gai.conf"
    # Let link bring-up settle (IPv6 interface start-up chatter).
    local i
    for i in $(seq 1 30); do
        ip netns exec "$CLI" ip -6 addr show dev "$CDEV" | grep -q tentative || break
        sleep 0.2
    done
    sleep 2
}

# Clients run with a fixed host name (own UTS namespace) that /etc/hosts in the
# client namespace resolves, so no client looks up the build machine's name.
in_cli() { ip netns exec "$CLI" unshare --uts sh -c 'hostname client.testlab.example && exec "$@"' sh "$@"; }
in_srv() { ip netns exec "$SRV" "$@"; }

wait_file() { # FILE TEXT -- wait until FILE exists (and contains TEXT)
    local i
    for i in $(seq 1 100); do
        if [ -s "$1" ] && { [ -z "${2:-}" ] || grep -q "$2" "$1"; }; then return 0; fi
        sleep 0.1
    done
    die "timed out waiting for $1"
}

# ---------------------------------------------------------------- capture
CAPS=()
cap_start() { # OUT [tcpdump args...]; default interface is the server veth
    local out=$1; shift
    local log="$WORK/tcpdump.$(basename "$out").log"
    local args=("$@")
    [ ${#args[@]} -eq 0 ] && args=(-i "$SDEV")
    ip netns exec "$SRV" tcpdump -Z root -n -s 0 "${args[@]}" -w "$out" "$FILTER" 2>"$log" &
    CAPS+=($!)
    PIDS+=($!)
    wait_file "$log" "listening on"
}
cap_stop() {
    local p
    sleep 1
    for p in "${CAPS[@]}"; do kill -INT "$p"; done
    for p in "${CAPS[@]}"; do wait "$p" || true; forget "$p"; done
    CAPS=()
}
forget() { local p keep=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }

# ---------------------------------------------------------------- servers
LAB_PID=
lab_start() { # PROFILE ADDR PORT [extra args]
    local prof=$1 addr=$2 port=$3; shift 3
    rm -f "$WORK/lab.ready"
    ip netns exec "$SRV" "$PY" "$HERE/labsmtpd.py" "$prof" --listen "$addr" --port "$port" \
        --ready "$WORK/lab.ready" --spool "$WORK/spool" "$@" 2>>"$WORK/labsmtpd.log" &
    LAB_PID=$!
    PIDS+=($LAB_PID)
    wait_file "$WORK/lab.ready"
}
lab_stop() {
    kill -TERM "$LAB_PID"
    wait "$LAB_PID" || true
    forget "$LAB_PID"
    LAB_PID=
}

postfix_start() { # [extra main.cf settings...]; PF_LISTEN: listen there instead of $S4 and $S6
    PF_DIR=$(mktemp -d "$WORK/postfix.XXXXXX")
    local d=$PF_DIR
    mkdir -p "$d/conf" "$d/spool" "$d/data"
    chmod 755 "$WORK" "$d"
    chown postfix: "$d/data"
    cat >"$d/conf/master.cf" <<'EOF'
# service type  private unpriv  chroot  wakeup  maxproc command
smtp      inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
EOF
    echo "compatibility_level = 3.6" >"$d/conf/main.cf"
    postconf -c "$d/conf" -e \
        "queue_directory = $d/spool" \
        "data_directory = $d/data" \
        "maillog_file_prefixes = $d" \
        "maillog_file = $d/maillog" \
        "myhostname = mx.testlab.example" \
        "mydomain = testlab.example" \
        "myorigin = testlab.example" \
        "mydestination = testlab.example" \
        "inet_interfaces = ${PF_LISTEN:-$S4, $S6}" \
        "inet_protocols = all" \
        "mynetworks = 10.25.0.0/24, [fd00:25::]/64" \
        "local_recipient_maps = inline:{guest@testlab.example=ok, ops@testlab.example=ok, sponsor@testlab.example=ok}" \
        "alias_maps =" "alias_database =" \
        "local_transport = discard:" "default_transport = discard:" "relay_transport = discard:" \
        "smtpd_peername_lookup = no" \
        "disable_dns_lookups = yes" \
        "biff = no" "$@"
    in_srv postfix -c "$d/conf" start >&2
    local i
    for i in $(seq 1 50); do
        in_srv ss -Hltn "sport = :25" | grep -q "${PF_LISTEN:-$S4}:25" && return 0
        sleep 0.1
    done
    die "postfix did not start"
}
postfix_stop() {
    local d=$PF_DIR
    PF_DIR=
    # In the server namespace: outside it the postfix command finds no local
    # interface for inet_interfaces and exits before it stops anything.
    in_srv postfix -c "$d/conf" stop >&2 || true
    local i
    for i in $(seq 1 50); do
        in_srv postfix -c "$d/conf" status >/dev/null 2>&1 || return 0
        sleep 0.1
    done
    say "postfix did not stop"
}

DNS_PID=
dns_start() {
    ip netns exec "$SRV" dnsmasq -C /dev/null --keep-in-foreground --no-resolv --no-hosts --no-poll \
        --bind-interfaces --listen-address="$S4" --port=53 --user=root --group=root \
        --pid-file="$WORK/dnsmasq.pid" --host-record="relay.testlab.example,$S4,$S6" \
        --log-queries --log-facility="$WORK/dnsmasq.log" &
    DNS_PID=$!
    PIDS+=($DNS_PID)
    local i
    for i in $(seq 1 50); do
        in_srv ss -Hlun "sport = :53" | grep -q "$S4" && return 0
        sleep 0.1
    done
    die "dnsmasq did not start"
}
dns_stop() { kill -TERM "$DNS_PID"; wait "$DNS_PID" || true; forget "$DNS_PID"; DNS_PID=; }

# ---------------------------------------------------------------- clients
swaks_c() { # swaks in the client namespace; its exit status is returned
    in_cli swaks --timeout 20 "$@" >>"$WORK/swaks.log" 2>&1
}
client() { in_cli "$PY" "$HERE/labclient.py" "$@" 2>>"$WORK/client.log"; }
expect_rc() { # EXPECTED CMD... -- run CMD, fail unless its exit status is EXPECTED
    local want=$1 rc=0; shift
    "$@" || rc=$?
    [ "$rc" = "$want" ] || die "$1 ... exited $rc, expected $want (see logs in $WORK)"
}

finish() { # NAME -- move a finished capture from the work dir into place
    cp "$WORK/$1" "$HERE/$1"
    say "$1: $(stat -c %s "$HERE/$1") bytes"
}

# ---------------------------------------------------------------- messages
make_messages() {
    local m=$WORK/msg
    mkdir -p "$m" "$WORK/spool"
    "$PY" "$HERE/mkmsg.py" guest "$m/guest.eml"
    "$PY" "$HERE/mkmsg.py" text "$m/auth.eml" --from sponsor@testlab.com --to guest@testlab.com \
        --subject "Guest account request" --msgid "req.0004@client.testlab.example"
    "$PY" "$HERE/mkmsg.py" text "$m/plain.eml" --from sender@testlab.example --to guest@testlab.example \
        --subject "Plain delivery" --msgid "plain.0001@client.testlab.example"
    "$PY" "$HERE/mkmsg.py" text "$m/pipe.eml" --from sender@testlab.example --to guest@testlab.example \
        --to ops@testlab.example --subject "Pipelined delivery" --msgid "pipe.0001@client.testlab.example"
    "$PY" "$HERE/mkmsg.py" text "$m/bdat.eml" --from sender@testlab.example --to guest@testlab.example \
        --subject "Chunked delivery" --msgid "bdat.0001@client.testlab.example" --lines 100
    "$PY" "$HERE/mkmsg.py" text "$m/multi.eml" --from sender@testlab.example --to guest@testlab.example \
        --subject "First of two" --msgid "multi.0001@client.testlab.example"
    "$PY" "$HERE/mkmsg.py" text "$m/v6.eml" --from sender@testlab.example --to guest@testlab.example \
        --subject "Delivery over IPv6" --msgid "v6.0001@client.testlab.example"
    "$PY" "$HERE/mkmsg.py" text "$m/big.eml" --from sender@testlab.example --to guest@testlab.example \
        --subject "Large report" --msgid "big.0001@client.testlab.example" --lines 1500
    "$PY" "$HERE/mkmsg.py" text "$m/helo.eml" --from sender@testlab.example --to guest@testlab.example \
        --subject "Delivery after HELO" --msgid "helo.0001@client.testlab.example"
    local n
    for n in early-postfix early-aiosmtpd early-pipelined starttls-clear bdat-malformed plain-465 \
             starttls-masked starttls-command-injection starttls-response-injection starttls-454-clear \
             tls-not-enforced; do
        "$PY" "$HERE/mkmsg.py" text "$m/w-$n.eml" --from sender@testlab.example --to guest@testlab.example \
            --subject "Test $n" --msgid "w-$n.0001@client.testlab.example"
    done
    "$PY" "$HERE/mkmsg.py" text "$m/w-auth-plain.eml" --from sponsor@testlab.com --to guest@testlab.com \
        --subject "Test auth-plain" --msgid "w-auth-plain.0001@client.testlab.example"
}

# ---------------------------------------------------------------- scenarios
run_s1() {
    say "s1-plain-delivery: aiosmtpd (mailsvc) <- smtplib"
    lab_start mailsvc "$S4" 25
    cap_start "$WORK/s1-plain-delivery.pcap"
    client deliver --server "$S4" --port 25 --bind "$C4" --lport 40001 --helo ISE3-1 \
        --from ise@testlab.com --to guest@testlab.com --msg "$WORK/msg/guest.eml"
    cap_stop
    lab_stop
    finish s1-plain-delivery.pcap
}

run_s4_s5() {
    say "s4/s5 AUTH LOGIN: aiosmtpd (submission) <- swaks"
    lab_start submission "$S4" 587
    cap_start "$WORK/s4-auth-login-ok.pcap"
    cap_start "$WORK/s4-sll.pcap" -i any -y LINUX_SLL
    cap_start "$WORK/s4-sll2.pcap" -i any -y LINUX_SLL2
    expect_rc 0 swaks_c --server "$S4" --port 587 --local-interface "$C4" --local-port 40004 \
        --helo client.testlab.example --auth LOGIN --auth-user sponsor@testlab.com \
        --auth-password S3cr3t-Pa55 --from sponsor@testlab.com --to guest@testlab.com \
        --data "@$WORK/msg/auth.eml"
    cap_stop
    finish s4-auth-login-ok.pcap
    finish s4-sll.pcap
    finish s4-sll2.pcap
    cap_start "$WORK/s5-auth-login-fail.pcap"
    expect_rc 28 swaks_c --server "$S4" --port 587 --local-interface "$C4" --local-port 40005 \
        --helo client.testlab.example --auth LOGIN --auth-user sponsor@testlab.com \
        --auth-password Wr0ng-Pa55 --from sponsor@testlab.com --to guest@testlab.com \
        --data "@$WORK/msg/auth.eml"
    cap_stop
    lab_stop
    finish s5-auth-login-fail.pcap
}

run_s6() {
    say "s6-refused-587: dnsmasq + closed port <- swaks"
    dns_start
    cap_start "$WORK/s6-refused-587.pcap"
    expect_rc 2 swaks_c --server relay.testlab.example --port 587 --local-port 40006 \
        --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example
    cap_stop
    dns_stop
    finish s6-refused-587.pcap
}

run_s8() {
    say "s8-starttls-454: aiosmtpd (starttls-454) <- smtplib starttls()"
    lab_start starttls-454 "$S4" 25
    cap_start "$WORK/s8-starttls-454.pcap"
    client starttls --server "$S4" --port 25 --bind "$C4" --lport 40008 --helo client.testlab.example \
        --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/plain.eml"
    cap_stop
    lab_stop
    finish s8-starttls-454.pcap
}

run_s10() {
    say "s10-tls-required-530: aiosmtpd (tls-required) <- swaks"
    lab_start tls-required "$S4" 587
    cap_start "$WORK/s10-tls-required-530.pcap"
    expect_rc 23 swaks_c --server "$S4" --port 587 --local-interface "$C4" --local-port 40010 \
        --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example \
        --data "@$WORK/msg/plain.eml"
    cap_stop
    lab_stop
    finish s10-tls-required-530.pcap
}

run_s11_helo() {
    say "s11-ehlo-rejected-helo: aiosmtpd (helo-only) <- smtplib"
    lab_start helo-only "$S4" 25
    cap_start "$WORK/s11-ehlo-rejected-helo.pcap"
    client helo --server "$S4" --port 25 --bind "$C4" --lport 40012 --helo client.testlab.example \
        --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/helo.eml"
    cap_stop
    lab_stop
    finish s11-ehlo-rejected-helo.pcap
}

run_421() {
    say "server-421-mid-data: aiosmtpd (abort-data) <- smtplib"
    lab_start abort-data "$S4" 25 --rcvbuf 16384
    cap_start "$WORK/server-421-mid-data.pcap"
    client big --server "$S4" --port 25 --bind "$C4" --lport 40024 --helo client.testlab.example \
        --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/big.eml"
    cap_stop
    lab_stop
    finish server-421-mid-data.pcap
}

run_postfix_set() {
    postfix_start
    if want s11 || want s11-starttls-not-offered; then
        say "s11-starttls-not-offered: Postfix <- swaks --tls-optional"
        cap_start "$WORK/s11-starttls-not-offered.pcap"
        expect_rc 0 swaks_c --server "$S4" --port 25 --local-interface "$C4" --local-port 40011 \
            --helo client.testlab.example --tls-optional --from sender@testlab.example \
            --to guest@testlab.example --data "@$WORK/msg/plain.eml"
        cap_stop
        finish s11-starttls-not-offered.pcap
    fi
    if want pipelining; then
        say "pipelining: Postfix <- swaks --pipeline"
        cap_start "$WORK/pipelining.pcap"
        expect_rc 0 swaks_c --server "$S4" --port 25 --local-interface "$C4" --local-port 40020 \
            --helo client.testlab.example --pipeline --from sender@testlab.example \
            --to guest@testlab.example,ops@testlab.example --data "@$WORK/msg/pipe.eml"
        cap_stop
        finish pipelining.pcap
    fi
    if want bdat; then
        say "bdat: Postfix <- labclient bdat"
        cap_start "$WORK/bdat.pcap"
        client bdat --server "$S4" --port 25 --bind "$C4" --lport 40021 --helo client.testlab.example \
            --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/bdat.eml"
        cap_stop
        finish bdat.pcap
    fi
    if want multi-transaction; then
        say "multi-transaction: Postfix <- smtplib"
        cap_start "$WORK/multi-transaction.pcap"
        client multi --server "$S4" --port 25 --bind "$C4" --lport 40022 --helo client.testlab.example \
            --from sender@testlab.example --to guest@testlab.example --unknown nobody@testlab.example \
            --msg "$WORK/msg/multi.eml"
        cap_stop
        finish multi-transaction.pcap
    fi
    if want ipv6; then
        say "ipv6: Postfix <- swaks -6"
        cap_start "$WORK/ipv6.pcap"
        expect_rc 0 swaks_c -6 --server "$S6" --port 25 --local-interface "$C6" --local-port 40023 \
            --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example \
            --data "@$WORK/msg/v6.eml"
        cap_stop
        finish ipv6.pcap
    fi
    sleep 1
    postfix_stop
}

derive() {
    say "derived and broken variants"
    local s1=$HERE/s1-plain-delivery.pcap s4=$HERE/s4-auth-login-ok.pcap d=$WORK/derived
    [ -f "$s1" ] && [ -f "$s4" ] || die "derived files need s1-plain-delivery.pcap and s4-auth-login-ok.pcap"
    mkdir -p "$d"
    "$PY" "$HERE/degrade.py" reorder "$s1" "$d/s1-reordered.pcap"
    "$PY" "$HERE/degrade.py" duplicate "$s1" "$d/s1-duplicated.pcap"
    "$PY" "$HERE/degrade.py" drop "$s1" "$d/s1-lost-segment.pcap"
    "$PY" "$HERE/degrade.py" qinq "$s1" "$d/s1-qinq.pcap"
    "$PY" "$HERE/degrade.py" midstream "$s1" "$d/s1-midstream.pcap"
    "$PY" "$HERE/degrade.py" rawip "$s4" "$d/s4-rawip.pcap"
    "$PY" "$HERE/degrade.py" null "$s4" "$d/s4-null.pcap"
    tcprewrite --enet-vlan=add --enet-vlan-tag=25 --enet-vlan-cfi=0 --enet-vlan-pri=0 \
        --infile="$s1" --outfile="$d/s1-vlan.pcap"
    editcap -s 96 "$s1" "$d/s1-snaplen96.pcap"
    editcap -F nsecpcap "$s1" "$d/s1-nsec.pcap"
    editcap -F pcapng "$s1" "$d/s1.pcapng"
    editcap -s 40 "$s1" "$d/s1-snaplen40.pcap"
    "$PY" "$HERE/degrade.py" clockback "$s1" "$d/s1-clock-back.pcap"
    # these need ipv6.pcap, s4-sll.pcap and s5 (real captures made above)
    [ -f "$HERE/ipv6.pcap" ] && "$PY" "$HERE/degrade.py" ext6 "$HERE/ipv6.pcap" "$d/ipv6-20-ext-headers.pcap"
    "$PY" "$HERE/degrade.py" rawip "$HERE/s5-auth-login-fail.pcap" "$WORK/s5-rawip.pcap"
    [ -f "$HERE/s4-sll.pcap" ] && mergecap -w "$d/merged-eth-sll-raw.pcapng" "$s1" "$HERE/s4-sll.pcap" "$WORK/s5-rawip.pcap"
    # Broken files for error handling.
    head -c "$("$PY" "$HERE/degrade.py" cutpoint "$s1")" "$s1" >"$d/broken-truncated.pcap"
    printf 'This is not a packet capture.\nIt is a plain text file with a .pcap name.\n' \
        >"$d/broken-notacapture.pcap"
    "$PY" "$HERE/degrade.py" badrecord "$s4" "$d/broken-badrecord.pcap"
    "$PY" "$HERE/degrade.py" linktype "$s4" "$d/broken-linktype.pcap"
    local f
    for f in "$d"/*; do cp "$f" "$HERE/"; say "$(basename "$f"): $(stat -c %s "$f") bytes"; done
}

# ---------------------------------------------------------------- wild-traffic classes
# The w-* captures: behaviour seen in real traffic that the first set lacks.
# Selected by their file names without .pcap, or all of them with "wild".
want_w() { want "$1" || want wild; }

first_talker() { # FILE -- source port of the first TCP segment that carries data
    tshark -r "$1" -Y 'tcp.len > 0' -T fields -e tcp.srcport 2>/dev/null | head -n 1
}
check_early() { # FILE -- fail unless the client spoke before the server's greeting
    local p
    p=$(first_talker "$1")
    [ -n "$p" ] && [ "$p" != 25 ] || die "$(basename "$1"): the server spoke first (source port '$p')"
}

wclient() { # labclient.py, with its transcript shown when it fails
    local from
    touch "$WORK/client.log"
    from=$(wc -l <"$WORK/client.log")
    client "$@" || { tail -n +"$((from + 1))" "$WORK/client.log" >&2; die "labclient.py $1 failed"; }
}

wait_port_free() { # PORT -- until nothing listens on PORT in the server namespace
    local i
    for i in $(seq 1 100); do
        [ -z "$(in_srv ss -Hltn "sport = :$1")" ] && return 0
        sleep 0.1
    done
    die "port $1 still in use"
}

run_w_postfix_early() {
    # Plain smtpd (no postscreen) with the classic greeting pause: with
    # smtpd_delay_reject = no the client restrictions run before the 220, and
    # "sleep 1" holds the greeting for a second. Without
    # reject_unauth_pipelining the early talker is served normally.
    postfix_start "smtpd_delay_reject = no" "smtpd_client_restrictions = sleep 1, permit"
    say "w-early-talker-postfix: Postfix (greeting after 1 s) <- labclient early"
    cap_start "$WORK/w-early-talker-postfix.pcap"
    wclient early --server "$S4" --port 25 --bind "$C4" --lport 40031 --helo client.testlab.example \
        --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/w-early-postfix.eml"
    cap_stop
    check_early "$WORK/w-early-talker-postfix.pcap"
    finish w-early-talker-postfix.pcap
    sleep 1
    postfix_stop
    wait_port_free 25
}

run_w_postfix_bdat() {
    postfix_start
    say "w-bdat-malformed: Postfix (CHUNKING) <- labclient bdat-malformed"
    cap_start "$WORK/w-bdat-malformed.pcap"
    wclient bdat-malformed --server "$S4" --port 25 --bind "$C4" --lport 40050 --helo client.testlab.example \
        --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/w-bdat-malformed.eml"
    cap_stop
    finish w-bdat-malformed.pcap
    sleep 1
    postfix_stop
    wait_port_free 25
}

run_w_lab_early() {
    lab_start greet-pause "$S4" 25
    if want_w w-early-talker-aiosmtpd; then
        say "w-early-talker-aiosmtpd: aiosmtpd (greet-pause) <- labclient early"
        cap_start "$WORK/w-early-talker-aiosmtpd.pcap"
        wclient early --server "$S4" --port 25 --bind "$C4" --lport 40032 --helo client.testlab.example \
            --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/w-early-aiosmtpd.eml"
        cap_stop
        check_early "$WORK/w-early-talker-aiosmtpd.pcap"
        finish w-early-talker-aiosmtpd.pcap
    fi
    if want_w w-early-talker-pipelined; then
        say "w-early-talker-pipelined: aiosmtpd (greet-pause) <- labclient early --early-pipeline"
        cap_start "$WORK/w-early-talker-pipelined.pcap"
        wclient early --early-pipeline --server "$S4" --port 25 --bind "$C4" --lport 40033 \
            --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example \
            --msg "$WORK/msg/w-early-pipelined.eml"
        cap_stop
        check_early "$WORK/w-early-talker-pipelined.pcap"
        finish w-early-talker-pipelined.pcap
    fi
    lab_stop
}

run_w_starttls_clear() {
    say "w-starttls-cleartext: aiosmtpd (starttls-clear) <- labclient starttls-clear"
    lab_start starttls-clear "$S4" 25
    cap_start "$WORK/w-starttls-cleartext.pcap"
    wclient starttls-clear --server "$S4" --port 25 --bind "$C4" --lport 40034 --helo client.testlab.example \
        --from sender@testlab.example --to guest@testlab.example --msg "$WORK/msg/w-starttls-clear.eml"
    cap_stop
    lab_stop
    cp "$WORK/w-starttls-cleartext.pcap" "$HERE/"
    say "w-starttls-cleartext.pcap: $(stat -c %s "$HERE/w-starttls-cleartext.pcap") bytes"
}

run_w_defer() {
    say "w-defer-no-code: aiosmtpd (defer-no-code) <- swaks"
    lab_start defer-no-code "$S4" 25
    cap_start "$WORK/w-defer-no-code.pcap"
    expect_rc 6 swaks_c --server "$S4" --port 25 --local-interface "$C4" --local-port 40036 \
        --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example
    cap_stop
    lab_stop
    finish w-defer-no-code.pcap
}

run_w_465() {
    say "w-plaintext-465: aiosmtpd (mailsvc) on 465 without TLS <- swaks --port 465"
    lab_start mailsvc "$S4" 465
    cap_start "$WORK/w-plaintext-465.pcap"
    expect_rc 0 swaks_c --server "$S4" --port 465 --local-interface "$C4" --local-port 40037 \
        --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example \
        --data "@$WORK/msg/w-plain-465.eml"
    cap_stop
    lab_stop
    finish w-plaintext-465.pcap
}

run_w_auth() {
    say "w-auth-refused: aiosmtpd (auth-mechs) on 587 <- labclient auth (3 connections)"
    lab_start auth-mechs "$S4" 587
    cap_start "$WORK/w-auth-refused.pcap"
    wclient auth --server "$S4" --port 587 --bind "$C4" --lport 40040 --helo client.testlab.example \
        --from sponsor@testlab.com --to guest@testlab.com --msg "$WORK/msg/w-auth-plain.eml"
    cap_stop
    lab_stop
    finish w-auth-refused.pcap
}

# ---------------------------------------------------------------- STARTTLS integrity
make_cert() { # a self-signed certificate for mx.testlab.example, made once per run
    local d=$WORK/tls
    [ -s "$d/mx.pem" ] && return 0
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout "$d/mx.key" -out "$d/mx.pem" \
        -subj "/CN=mx.testlab.example" -addext "subjectAltName=DNS:mx.testlab.example" 2>/dev/null
    chmod 755 "$d"
    chmod 644 "$d/mx.pem"
    chmod 600 "$d/mx.key"
}
pf_tls() { # main.cf settings for STARTTLS with the certificate from make_cert
    printf '%s\n' "smtpd_tls_security_level = may" "smtpd_tls_cert_file = $WORK/tls/mx.pem" \
        "smtpd_tls_key_file = $WORK/tls/mx.key" "smtpd_tls_loglevel = 1"
}

PROXY_PID=
proxy_start() { # LISTEN-ADDR PORT UPSTREAM-ADDR UPSTREAM-PORT -- labproxy.py in the server namespace
    rm -f "$WORK/proxy.ready"
    ip netns exec "$SRV" "$PY" "$HERE/labproxy.py" --listen "$1" --port "$2" --upstream "$3" \
        --upstream-port "$4" --ready "$WORK/proxy.ready" 2>>"$WORK/labproxy.log" &
    PROXY_PID=$!
    PIDS+=($PROXY_PID)
    wait_file "$WORK/proxy.ready"
}
proxy_stop() { kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true; forget "$PROXY_PID"; PROXY_PID=; }

run_w_masked() {
    # Postfix offers STARTTLS on 127.0.0.1:25 in the server namespace; the
    # inspecting relay on 10.25.0.2:25 in front of it masks the keyword. The
    # veth capture sees only the client <-> relay side, as a capture taken
    # in front of such a firewall does.
    make_cert
    local tls
    mapfile -t tls < <(pf_tls)
    PF_LISTEN=127.0.0.1 postfix_start "${tls[@]}"
    proxy_start "$S4" 25 127.0.0.1 25
    say "w-starttls-masked: Postfix (STARTTLS) behind labproxy.py (STARTTLS -> XXXXXXXA) <- swaks --tls-optional"
    cap_start "$WORK/w-starttls-masked.pcap"
    expect_rc 0 swaks_c --server "$S4" --port 25 --local-interface "$C4" --local-port 40060 \
        --helo client.testlab.example --tls-optional --from sender@testlab.example \
        --to guest@testlab.example --data "@$WORK/msg/w-starttls-masked.eml"
    cap_stop
    grep -q "masked:" "$WORK/labproxy.log" || die "w-starttls-masked: the relay masked nothing"
    finish w-starttls-masked.pcap
    proxy_stop
    sleep 1
    postfix_stop
    wait_port_free 25
}

run_w_postfix_tls() {
    make_cert
    local tls
    mapfile -t tls < <(pf_tls)
    postfix_start "${tls[@]}"
    if want_w w-starttls-command-injection; then
        say "w-starttls-command-injection: Postfix (STARTTLS) <- labclient starttls-inject"
        cap_start "$WORK/w-starttls-command-injection.pcap"
        wclient starttls-inject --server "$S4" --port 25 --bind "$C4" --lport 40061 \
            --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example \
            --msg "$WORK/msg/w-starttls-command-injection.eml"
        cap_stop
        # What Postfix made of the RSET behind STARTTLS (its command counts).
        grep -h "improper\|disconnect from" "$PF_DIR/maillog" >&2 || true
        finish w-starttls-command-injection.pcap
    fi
    if want_w w-tls-not-enforced; then
        say "w-tls-not-enforced: Postfix (STARTTLS) <- swaks without TLS"
        cap_start "$WORK/w-tls-not-enforced.pcap"
        expect_rc 0 swaks_c --server "$S4" --port 25 --local-interface "$C4" --local-port 40064 \
            --helo client.testlab.example --from sender@testlab.example --to guest@testlab.example \
            --data "@$WORK/msg/w-tls-not-enforced.eml"
        cap_stop
        finish w-tls-not-enforced.pcap
    fi
    sleep 1
    postfix_stop
    wait_port_free 25
}

run_w_response_injection() {
    make_cert
    say "w-starttls-response-injection: aiosmtpd (starttls-inject) <- swaks --tls"
    lab_start starttls-inject "$S4" 25 --cert "$WORK/tls/mx.pem" --key "$WORK/tls/mx.key"
    cap_start "$WORK/w-starttls-response-injection.pcap"
    # swaks keeps the injected line and reads it, inside TLS, as the reply to
    # its EHLO; every later reply is one behind, so DATA "fails" (exit 25).
    expect_rc 25 swaks_c --server "$S4" --port 25 --local-interface "$C4" --local-port 40062 \
        --helo client.testlab.example --tls --from sender@testlab.example --to guest@testlab.example \
        --data "@$WORK/msg/w-starttls-response-injection.eml"
    cap_stop
    lab_stop
    finish w-starttls-response-injection.pcap
}

run_w_454_clear() {
    say "w-starttls-454-then-clear: aiosmtpd (starttls-454) <- swaks --tls-optional"
    lab_start starttls-454 "$S4" 25
    cap_start "$WORK/w-starttls-454-then-clear.pcap"
    expect_rc 0 swaks_c --server "$S4" --port 25 --local-interface "$C4" --local-port 40063 \
        --helo client.testlab.example --tls-optional --from sender@testlab.example \
        --to guest@testlab.example --data "@$WORK/msg/w-starttls-454-clear.eml"
    cap_stop
    lab_stop
    finish w-starttls-454-then-clear.pcap
}

derive_wild() {
    local s1=$HERE/s1-plain-delivery.pcap d=$WORK/derived-w f
    [ -f "$s1" ] || die "the derived w-* files need s1-plain-delivery.pcap"
    mkdir -p "$d"
    if want_w w-one-sided-client; then
        say "w-one-sided-client: s1, client-to-server packets only"
        tcpdump -n -r "$s1" -w "$d/w-one-sided-client.pcap" 'tcp and dst port 25' 2>/dev/null
    fi
    if want_w w-one-sided-server; then
        say "w-one-sided-server: s1, server-to-client packets only"
        tcpdump -n -r "$s1" -w "$d/w-one-sided-server.pcap" 'tcp and src port 25' 2>/dev/null
    fi
    if want_w w-ack-race; then
        say "w-ack-race: s1 with server ACKs written before the data they acknowledge"
        "$PY" "$HERE/degrade.py" ackrace "$s1" "$d/w-ack-race.pcap"
    fi
    if want_w w-ack-race-multi; then
        say "w-ack-race-multi: s1 with server ACKs written before 2-3 segments they acknowledge"
        "$PY" "$HERE/degrade.py" ackrace-multi "$s1" "$d/w-ack-race-multi.pcap"
    fi
    for f in "$d"/*; do
        [ -e "$f" ] || continue
        cp "$f" "$HERE/"
        say "$(basename "$f"): $(stat -c %s "$f") bytes"
    done
}

run_wild() {
    if want_w w-early-talker-aiosmtpd || want_w w-early-talker-pipelined; then run_w_lab_early; fi
    if want_w w-starttls-cleartext; then run_w_starttls_clear; fi
    if want_w w-defer-no-code; then run_w_defer; fi
    if want_w w-plaintext-465; then run_w_465; fi
    if want_w w-auth-refused; then run_w_auth; fi
    if want_w w-early-talker-postfix; then run_w_postfix_early; fi
    if want_w w-bdat-malformed; then run_w_postfix_bdat; fi
    if want_w w-starttls-masked; then run_w_masked; fi
    if want_w w-starttls-command-injection || want_w w-tls-not-enforced; then run_w_postfix_tls; fi
    if want_w w-starttls-response-injection; then run_w_response_injection; fi
    if want_w w-starttls-454-then-clear; then run_w_454_clear; fi
}

# ---------------------------------------------------------------- main
install_deps
WORK=$(mktemp -d /tmp/mxc-smtp.XXXXXX)
make_messages
NEED_NET=0
for n in s1 s4 s5 s6 s8 s10 s11 s11-starttls-not-offered s11-ehlo-rejected-helo pipelining bdat \
         multi-transaction ipv6 421 server-421-mid-data; do
    want "$n" && NEED_NET=1
done
if [ "$NEED_NET" = 1 ]; then
    setup_net
    if want s1; then run_s1; fi
    if want s4 || want s5; then run_s4_s5; fi
    if want s6; then run_s6; fi
    if want s8; then run_s8; fi
    if want s10; then run_s10; fi
    if want s11 || want s11-ehlo-rejected-helo; then run_s11_helo; fi
    if want 421 || want server-421-mid-data; then run_421; fi
    if want s11 || want s11-starttls-not-offered || want pipelining || want bdat ||
       want multi-transaction || want ipv6; then
        run_postfix_set
    fi
fi
if want derived; then derive; fi
NEED_NET=0
for n in wild w-early-talker-postfix w-early-talker-aiosmtpd w-early-talker-pipelined w-starttls-cleartext \
         w-bdat-malformed w-defer-no-code w-plaintext-465 w-auth-refused w-starttls-masked \
         w-starttls-command-injection w-starttls-response-injection w-starttls-454-then-clear \
         w-tls-not-enforced; do
    want "$n" && NEED_NET=1
done
if [ "$NEED_NET" = 1 ]; then
    # A fresh pair of namespaces, so these captures never start with the
    # neighbour traffic left over from the sessions above.
    setup_net
    run_wild
fi
if want wild || want w-one-sided-client || want w-one-sided-server || want w-ack-race ||
   want w-ack-race-multi; then
    derive_wild
fi
say "done"
