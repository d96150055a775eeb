#!/bin/bash
# Regenerates the delivery-attempt captures in this directory.
#
# Run as root on Debian 12:  bash pcaps/attempts/make.sh [NAME...]
# With no NAME every capture is made; a NAME (mx-fallback, clear-fallback,
# greylisting, dane) makes only that one.  `bash pcaps/attempts/make.sh check`
# (no root) reads the committed files with tshark and checks their DNS
# queries and answers and clear-text SMTP, connection by connection, against
# EXPECT below (README.md lists the same sequences frame by frame).
#
# The sending MTA is a real Postfix (its smtp client) in the namespace
# mxa-cli; it resolves the MX, A and TLSA records of example.test through a
# dnsmasq in mxa-srv and delivers to the MX hosts there (Postfix smtpd, one
# service for each MX host, each on an address of its own):
#
#   mxa-cli  10.30.0.1  (veth mxa-c0)  <---->  mxa-srv (veth mxa-s0)
#                                               10.30.0.53  dnsmasq
#                                               10.30.0.11  mx1.example.test
#                                               10.30.0.12  mx2.example.test
#
# tcpdump records on the client's end (mxa-c0), so each file holds the
# client's DNS look-ups and every SMTP connection of the scenario.  Mail is
# submitted with Postfix's sendmail (no network traffic).  Only these private
# addresses and names under example.test are used; IPv6 is off.  Each run
# makes a new PKI; only the public certificates are kept, in certs/.
# Everything is torn down on exit; with MXA_KEEP=1 the work directory (logs of
# both Postfix instances, dnsmasq and the greylisting policy) is kept.
set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${MXA_OUT:-$HERE}
PY=/usr/bin/python3

CLI_NS=mxa-cli
SRV_NS=mxa-srv
CLI_IF=mxa-c0
SRV_IF=mxa-s0
CLI_IP=10.30.0.1
DNS_IP=10.30.0.53
MX1_IP=10.30.0.11
MX2_IP=10.30.0.12
DOMAIN=example.test
MX1=mx1.example.test
MX2=mx2.example.test
CLIENT_NAME=client.example.test
MAIL_FROM=alice@client.example.test
RCPT_TO=bob@example.test

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'make.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- check
# One line a capture: NAME, then the DNS and SMTP events in frame order, each
# "Q:TYPE:NAME" (query), "R:TYPE[:DATA]" (each record of an answer, all
# sections; 41 is the EDNS OPT record) or, for SMTP, "cN>COMMAND" /
# "cN<CODE" (TCP connection N, in order of appearance; what tshark reads in
# clear text: STARTTLS is its "STAR", commands pipelined behind the end of
# the message text are not listed).
events() { # PCAP
    tshark -r "$1" -n -Y 'dns or smtp' -T fields -E separator='|' -E occurrence=a -E aggregator=, \
        -e dns.flags.response -e dns.qry.type -e dns.qry.name -e dns.resp.type \
        -e dns.mx.mail_exchange -e dns.a -e dns.tlsa.certificate_association_data \
        -e tcp.stream -e smtp.req.command -e smtp.response.code 2>/dev/null |
    awk -F'|' '
        function conn(s) { if (!(s in C)) C[s] = "c" (++n); return C[s] }
        function qt(t) { return t == 1 ? "A" : t == 15 ? "MX" : t == 52 ? "TLSA" : t == 28 ? "AAAA" : t }
        {
            if ($1 == "0") { out = out " Q:" qt($2) ":" $3; next }
            if ($1 == "1") {
                split($4, t, ","); split($5, mx, ","); split($6, a, ","); nm = 0; na = 0
                if ($4 == "") out = out " R:-"
                for (i = 1; i in t; i++) {
                    if (t[i] == 15) out = out " R:MX:" mx[++nm]
                    else if (t[i] == 1) out = out " R:A:" a[++na]
                    else if (t[i] == 52) out = out " R:TLSA"
                    else out = out " R:" t[i]
                }
                next
            }
            if ($9 != "") { split($9, c, ","); for (i = 1; i in c; i++) out = out " " conn($8) ">" c[i] }
            if ($10 != "") { split($10, c, ","); for (i = 1; i in c; i++) out = out " " conn($8) "<" c[i] }
        }
        END { print substr(out, 2) }'
}

EXPECT="
attempts-mx1-tls-fails-mx2-ok Q:MX:example.test R:MX:mx2.example.test R:MX:mx1.example.test R:A:10.30.0.12 R:A:10.30.0.11 Q:A:mx1.example.test R:A:10.30.0.11 Q:A:mx2.example.test R:A:10.30.0.12 c1<220 c1>EHLO c1<250 c1>STAR c1<220 c2<220 c2>EHLO c2<250 c2>STAR c2<220
attempts-tls-fails-then-clear Q:MX:example.test R:MX:mx1.example.test R:A:10.30.0.11 Q:A:mx1.example.test R:A:10.30.0.11 c1<220 c1>EHLO c1<250 c1>STAR c1<220 Q:MX:example.test R:MX:mx1.example.test R:A:10.30.0.11 Q:A:mx1.example.test R:A:10.30.0.11 c2<220 c2>EHLO c2<250 c2>STAR c2<220 c3<220 c3>EHLO c3<250 c3>MAIL c3>RCPT c3>DATA c3<250 c3<250 c3<354 c3<250 c3<221
attempts-greylisting Q:MX:example.test R:MX:mx1.example.test R:A:10.30.0.11 Q:A:mx1.example.test R:A:10.30.0.11 c1<220 c1>EHLO c1<250 c1>MAIL c1>RCPT c1>DATA c1<250 c1<450 c1<554 c1<250 c1<221 Q:MX:example.test R:MX:mx1.example.test R:A:10.30.0.11 Q:A:mx1.example.test R:A:10.30.0.11 c2<220 c2>EHLO c2<250 c2>MAIL c2>RCPT c2>DATA c2<250 c2<250 c2<354 c2<250 c2<221
attempts-dane-tlsa Q:MX:example.test R:MX:mx1.example.test R:A:10.30.0.11 R:41 Q:A:mx1.example.test R:A:10.30.0.11 R:41 Q:TLSA:_25._tcp.mx1.example.test R:TLSA R:41 c1<220 c1>EHLO c1<250 c1>STAR c1<220
"

check_captures() {
    local bad=0 name want got
    while read -r name want; do
        [ -n "$name" ] || continue
        [ -f "$OUT/$name.pcap" ] || { echo "MISSING $name.pcap" >&2; bad=1; continue; }
        got=$(events "$OUT/$name.pcap")
        if [ "$got" = "$want" ]; then
            printf 'ok   %s\n' "$name" >&2
        else
            printf 'FAIL %s\n  got  %s\n  want %s\n' "$name" "$got" "$want" >&2
            bad=1
        fi
    done <<<"$EXPECT"
    return $bad
}

if [ "${1:-}" = check ]; then check_captures; exit; fi

[ "$(id -u)" -eq 0 ] || die "must run as root"

WANT=("$@")
want() {
    [ ${#WANT[@]} -eq 0 ] && return 0
    local w
    for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

# ---------------------------------------------------------------- packages
install_packages() {
    local pkgs=(postfix tcpdump tshark python3 openssl dnsmasq-base bind9-dnsutils
                iproute2 ethtool procps)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        # Postfix must not configure or start a system-wide instance.
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
        apt-get -o DPkg::Lock::Timeout=600 update -q
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
    fi
    local c
    for c in postconf postfix sendmail postqueue tcpdump tshark openssl dnsmasq dig ip ethtool; do
        command -v "$c" >/dev/null || die "missing command after install: $c"
    done
}

# ---------------------------------------------------------------- teardown
WORK=
TCPDUMP_PID=
DNSMASQ_PID=
SRV_PF=
CLI_PF=
NETNS_MADE=0

stop_pid() { # stop_pid PID SIGNAL - signal one process started here and reap it
    local pid=$1 sig=${2:-TERM} i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -s KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$TCPDUMP_PID" INT; TCPDUMP_PID=
    stop_pid "$GREY_PID" TERM; GREY_PID=
    pf_stop CLI_PF "$CLI_NS"
    pf_stop SRV_PF "$SRV_NS"
    stop_pid "$AD_PID" TERM; AD_PID=
    stop_pid "$DNSMASQ_PID" TERM; DNSMASQ_PID=
    if [ "$NETNS_MADE" = 1 ]; then
        local ns pid
        for ns in "$CLI_NS" "$SRV_NS"; do
            # anything still running inside these namespaces was started here
            for pid in $(ip netns pids "$ns" 2>/dev/null); do stop_pid "$pid" TERM; done
            ip netns del "$ns" 2>/dev/null
            rm -rf "/etc/netns/$ns"
        done
    fi
    if [ -n "$WORK" ] && [ "${MXA_KEEP:-0}" = 1 ]; then
        log "work directory kept: $WORK"
    elif [ -n "$WORK" ]; then
        rm -rf "$WORK"
    fi
    exit $rc
}

# ---------------------------------------------------------------- network
# (background servers are started with "ip netns exec" itself, not through
# in_cli/in_srv, so that $! is the server's own process)
net_up() {
    local ns
    for ns in "$CLI_NS" "$SRV_NS"; do
        if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
            die "network namespace $ns already exists (another run in progress?); remove it first"
        fi
    done
    NETNS_MADE=1
    ip netns add "$CLI_NS"
    ip netns add "$SRV_NS"
    ip link add "$CLI_IF" type veth peer name "$SRV_IF"
    ip link set "$CLI_IF" netns "$CLI_NS"
    ip link set "$SRV_IF" netns "$SRV_NS"
    ip -n "$CLI_NS" link set "$CLI_IF" address 0e:30:00:00:00:01
    ip -n "$SRV_NS" link set "$SRV_IF" address 0e:30:00:00:00:02
    local pair dev
    for pair in "$CLI_NS:$CLI_IF" "$SRV_NS:$SRV_IF"; do
        ns=${pair%%:*}; dev=${pair#*:}
        # IPv4 only: no router solicitations or MLD reports in the captures
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" mtu 1500
        # Real MTU-sized segments and correct checksums on the wire.
        ip netns exec "$ns" ethtool -K "$dev" tx off tso off gso off gro off >/dev/null 2>&1 ||
            ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null
        ip -n "$ns" link set "$dev" up
        mkdir -p "/etc/netns/$ns"
        echo "nameserver $DNS_IP" >"/etc/netns/$ns/resolv.conf"
    done
    ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "$CLI_IF"
    ip -n "$SRV_NS" addr add "$DNS_IP/24" dev "$SRV_IF"
    ip -n "$SRV_NS" addr add "$MX1_IP/24" dev "$SRV_IF"
    ip -n "$SRV_NS" addr add "$MX2_IP/24" dev "$SRV_IF"
    # The client's connections come from a recognisable port range.
    ip netns exec "$CLI_NS" sysctl -qw net.ipv4.ip_local_port_range="40100 40199"
    printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$CLI_IP" "$CLIENT_NAME" >"/etc/netns/$CLI_NS/hosts"
    printf '127.0.0.1\tlocalhost\n%s\t%s\n%s\t%s\n' "$MX1_IP" "$MX1" "$MX2_IP" "$MX2" >"/etc/netns/$SRV_NS/hosts"
    ip netns exec "$CLI_NS" ping -c 1 -W 2 "$MX1_IP" >/dev/null || die "veth pair does not pass traffic"
}

in_cli() { ip netns exec "$CLI_NS" "$@"; }
in_srv() { ip netns exec "$SRV_NS" "$@"; }

wait_for() { # SECONDS CMD... - poll CMD every 0.2 s until it succeeds
    local n=$(( $1 * 5 )) i; shift
    for i in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# ---------------------------------------------------------------- PKI
# Two roots: the client trusts "mxtrace Attempts CA" (issuer of mx2) and not
# "mxtrace Other CA" (issuer of mx1). Fixed validity windows, so that the
# certificates do not depend on the clock of the machine that makes them.
make_pki() {
    local d=$WORK/pki
    mkdir -p "$d/newcerts"
    : >"$d/index.txt"
    echo 3000 >"$d/serial"
    cat >"$d/ca.cnf" <<'EOF'
[ ca ]
default_ca = lab_ca
[ lab_ca ]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = lab_policy
unique_subject = no
copy_extensions = none
preserve = yes
email_in_dn = no
[ lab_policy ]
organizationName = optional
commonName = supplied
[ root_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ server_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $ENV::MXA_SAN
EOF
    (
        cd "$d"
        export MXA_SAN=DNS:unused.invalid
        local k
        for k in trusted-ca other-ca mx1 mx2; do
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k.key" 2>/dev/null
        done
        root() { # KEY CN OUT
            openssl req -new -key "$1" -subj "/O=mxtrace test lab/CN=$2" -out "$3.csr"
            openssl ca -batch -config ca.cnf -selfsign -extensions root_ext -keyfile "$1" \
                -startdate 20190101000000Z -enddate 20440101000000Z -notext -in "$3.csr" -out "$3" 2>/dev/null
        }
        leaf() { # KEY CN CA OUT
            openssl req -new -key "$1" -subj "/O=mxtrace test lab/CN=$2" -out "$4.csr"
            MXA_SAN="DNS:$2" openssl ca -batch -config ca.cnf -extensions server_ext -notext \
                -cert "$3.pem" -keyfile "$3.key" -startdate 20250101000000Z -enddate 20350101000000Z \
                -in "$4.csr" -out "$4" 2>/dev/null
        }
        root trusted-ca.key "mxtrace Attempts CA" trusted-ca.pem
        root other-ca.key "mxtrace Other CA" other-ca.pem
        leaf mx1.key "$MX1" other-ca mx1.pem
        leaf mx2.key "$MX2" trusted-ca mx2.pem
        openssl verify -CAfile trusted-ca.pem mx2.pem >/dev/null
        openssl verify -CAfile other-ca.pem mx1.pem >/dev/null
        if openssl verify -CAfile trusted-ca.pem mx1.pem >/dev/null 2>&1; then
            echo "mx1.pem unexpectedly verifies against trusted-ca.pem" >&2; exit 1
        fi
        # DANE-EE(3) SPKI(1) SHA2-256(1): digest of mx1's SubjectPublicKeyInfo
        openssl x509 -in mx1.pem -noout -pubkey | openssl pkey -pubin -outform DER |
            openssl dgst -sha256 -binary | od -An -tx1 | tr -d ' \n' >mx1.tlsa
    )
    chmod 0755 "$d"
    chmod 0644 "$d"/*.pem
    # The committed certificates go with the committed captures: only a full
    # run replaces them.
    [ ${#WANT[@]} -eq 0 ] || return 0
    mkdir -p "$OUT/certs"
    cp "$d/trusted-ca.pem" "$OUT/certs/attempts-ca.pem"
    cp "$d/other-ca.pem" "$OUT/certs/other-ca.pem"
    cp "$d/mx1.pem" "$OUT/certs/mx1.example.test.pem"
    cp "$d/mx2.pem" "$OUT/certs/mx2.example.test.pem"
    echo "3 1 1 $(cat "$d/mx1.tlsa")" >"$OUT/certs/mx1.example.test.tlsa"
    log "TLSA _25._tcp.$MX1: 3 1 1 $(cat "$d/mx1.tlsa")"
}

# ---------------------------------------------------------------- DNS
# dns_start [dnsmasq option...]: answers only for example.test (other names
# under it: NXDOMAIN), nothing is forwarded, no cache (each look-up goes to
# the records as configured). With DNS_AD=1 dnsmasq listens on 127.0.0.1 of
# mxa-srv instead, behind adflag.py on 10.30.0.53, which sets the AD bit on
# the answers (dnsmasq never sets it on its own MX and --dns-rr data).
DNS_AD=0
AD_PID=
dns_start() {
    local listen=$DNS_IP
    [ "$DNS_AD" = 1 ] && listen=127.0.0.1
    rm -f "$WORK/dnsmasq.log"
    ip netns exec "$SRV_NS" dnsmasq -C /dev/null --keep-in-foreground --no-resolv --no-hosts --no-poll \
        --bind-interfaces --listen-address="$listen" --port=53 --user=root --group=root \
        --pid-file="$WORK/dnsmasq.pid" --cache-size=0 --local="/$DOMAIN/" \
        --host-record="$MX1,$MX1_IP" --host-record="$MX2,$MX2_IP" \
        --log-queries=extra --log-facility="$WORK/dnsmasq.log" "$@" &
    DNSMASQ_PID=$!
    wait_for 10 in_srv dig +short +time=1 +tries=1 "@$listen" "$MX1" A || die "dnsmasq does not answer"
    if [ "$DNS_AD" = 1 ]; then
        rm -f "$WORK/adflag.ready"
        ip netns exec "$SRV_NS" "$PY" "$HERE/adflag.py" --listen "$DNS_IP" --upstream 127.0.0.1 \
            --ready "$WORK/adflag.ready" 2>>"$WORK/adflag.log" &
        AD_PID=$!
        wait_for 10 test -s "$WORK/adflag.ready" || die "adflag.py did not start"
    fi
}
dns_stop() { stop_pid "$AD_PID" TERM; AD_PID=; stop_pid "$DNSMASQ_PID" TERM; DNSMASQ_PID=; }

# ---------------------------------------------------------------- Postfix
# pf_write DIR MAIN-LINES... - a private Postfix instance: main.cf from the
# arguments, master.cf from stdin.
pf_write() {
    local d=$1; shift
    mkdir -p "$d/etc" "$d/spool" "$d/data"
    chmod 0755 "$d"
    chown postfix "$d/data"
    {
        cat <<EOF
compatibility_level = 3.6
queue_directory = $d/spool
data_directory = $d/data
maillog_file_prefixes = $d
maillog_file = $d/maillog
inet_protocols = ipv4
alias_maps =
alias_database =
biff = no
EOF
        local line
        for line in "$@"; do echo "$line"; done
    } >"$d/etc/main.cf"
    cat >"$d/etc/master.cf"
}

pf_common_services() {
    cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
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
EOF
}

# pf_run VAR NS - start the instance in $WORK/VAR inside namespace NS
pf_run() {
    local var=$1 ns=$2 d=$WORK/${1,,}
    ip netns exec "$ns" postfix -c "$d/etc" start >>"$WORK/postfix-start.log" 2>&1 ||
        { cat "$WORK/postfix-start.log" "$d/maillog" >&2 2>/dev/null; die "postfix ($var) did not start"; }
    printf -v "$var" '%s' "$d"
    wait_for 10 test -S "$d/spool/public/pickup" -o -p "$d/spool/public/pickup" ||
        die "postfix ($var) is not up"
}

# pf_stop VAR NS - stop the instance named by VAR (in namespace NS: outside it
# the postfix command finds no local interface for inet_interfaces)
pf_stop() {
    local var=$1 ns=$2 d pid i
    d=${!var}
    printf -v "$var" '%s' ""
    [ -n "$d" ] && [ -f "$d/spool/pid/master.pid" ] || return 0
    pid=$(tr -dc 0-9 <"$d/spool/pid/master.pid")
    ip netns exec "$ns" postfix -c "$d/etc" stop >>"$WORK/postfix-start.log" 2>&1 || true
    for i in $(seq 100); do
        { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || break
        sleep 0.1
    done
    { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } && ip netns exec "$ns" postfix -c "$d/etc" abort >/dev/null 2>&1
    rm -f "$d/spool/pid/master.pid"
}

# srv_start SERVICE-LINE... - the receiving Postfix in mxa-srv; each argument
# is one smtpd line of master.cf (ADDR:smtp inet ... smtpd -o ...)
srv_start() {
    local d=$WORK/srv_pf
    rm -rf "$d"
    { local s; for s in "$@"; do echo "$s"; done; pf_common_services; } |
    pf_write "$d" \
        "myhostname = mx.$DOMAIN" \
        "mydomain = $DOMAIN" \
        "myorigin = $DOMAIN" \
        "mydestination = $DOMAIN" \
        "inet_interfaces = $MX1_IP, $MX2_IP" \
        "mynetworks = 127.0.0.0/8" \
        "local_recipient_maps =" \
        "local_transport = discard:accepted" \
        "smtpd_peername_lookup = no" \
        "disable_dns_lookups = yes" \
        "smtpd_tls_security_level = may" \
        "smtpd_tls_loglevel = 1"
    pf_run SRV_PF "$SRV_NS"
    wait_for 10 sh -c "ip netns exec $SRV_NS ss -Hltn 'sport = :25' | grep -q $MX1_IP:25" ||
        die "receiving postfix is not listening"
}
srv_stop() { pf_stop SRV_PF "$SRV_NS"; }

# mx_service NAME ADDR KEY CHAIN [-o ...] - one smtpd with its own name and certificate
mx_service() {
    local name=$1 addr=$2 key=$3 chain=$4; shift 4
    echo "$addr:smtp inet n - n - - smtpd -o syslog_name=postfix/${name%%.*} -o myhostname=$name" \
         "-o smtpd_tls_chain_files=$key,$chain $*"
}

# cli_start MAIN-LINES... - the sending Postfix in mxa-cli: direct delivery to
# the MX hosts of each domain (no relayhost), IPv4 only, no connection reuse,
# retries only when asked for (postqueue -f)
cli_start() {
    local d=$WORK/cli_pf
    rm -rf "$d"
    { echo "smtp      unix  -       -       n       -       -       smtp"
      echo "relay     unix  -       -       n       -       -       smtp"
      pf_common_services; } |
    pf_write "$d" \
        "myhostname = $CLIENT_NAME" \
        "mydomain = $DOMAIN" \
        "myorigin = $CLIENT_NAME" \
        "mydestination =" \
        "inet_interfaces = loopback-only" \
        "mynetworks = 127.0.0.0/8" \
        "relayhost =" \
        "smtp_connection_cache_on_demand = no" \
        "minimal_backoff_time = 5s" \
        "maximal_backoff_time = 60s" \
        "queue_run_delay = 300s" \
        "smtp_tls_loglevel = 1" \
        "$@"
    pf_run CLI_PF "$CLI_NS"
}
cli_stop() { pf_stop CLI_PF "$CLI_NS"; }

# submit MSGID SUBJECT - hand one short message to the sending Postfix
submit() {
    printf '%s\r\n' "From: Alice <$MAIL_FROM>" "To: Bob <$RCPT_TO>" "Subject: $2" \
        "Date: Tue, 14 Jan 2025 09:30:00 +0000" "Message-ID: <$1@$CLIENT_NAME>" \
        "" "Short test message." |
    in_cli sendmail -C "$CLI_PF/etc" -f "$MAIL_FROM" -- "$RCPT_TO" ||
        die "sendmail failed"
}
cli_log_has() { grep -q -- "$1" "$CLI_PF/maillog" 2>/dev/null; }
wait_cli_log() { # PATTERN [SECONDS]
    wait_for "${2:-30}" cli_log_has "$1" || { tail -n 30 "$CLI_PF/maillog" >&2; die "client log never said: $1"; }
}
flush_queue() { in_cli postqueue -c "$CLI_PF/etc" -f; }

# ---------------------------------------------------------------- greylisting policy
GREY_PID=
grey_start() {
    rm -f "$WORK/grey.ready"
    ip netns exec "$SRV_NS" "$PY" "$HERE/greylist-policy.py" --listen 127.0.0.1 --port 10023 --delay 3 \
        --ready "$WORK/grey.ready" 2>>"$WORK/greylist-policy.log" &
    GREY_PID=$!
    wait_for 10 test -s "$WORK/grey.ready" || die "greylist-policy.py did not start"
}
grey_stop() { stop_pid "$GREY_PID" TERM; GREY_PID=; }

# ---------------------------------------------------------------- capture
CAP_NAME=
cap_start() { # NAME
    CAP_NAME=$1
    rm -f "$WORK/$CAP_NAME.pcap" "$WORK/tcpdump.err"
    # background jobs of a non-interactive shell ignore SIGINT; tcpdump must not
    ip netns exec "$CLI_NS" env --default-signal=INT tcpdump -Z root -n -s 0 -i "$CLI_IF" -w "$WORK/$CAP_NAME.pcap" \
        2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    wait_for 10 grep -q 'listening on' "$WORK/tcpdump.err" || die "tcpdump did not start"
}
cap_stop() {
    sleep 1
    stop_pid "$TCPDUMP_PID" INT
    TCPDUMP_PID=
    grep -q 'packets captured' "$WORK/tcpdump.err" || die "tcpdump did not stop cleanly for $CAP_NAME"
    cp "$WORK/$CAP_NAME.pcap" "$OUT/$CAP_NAME.pcap"
    log "$CAP_NAME: $(stat -c %s "$OUT/$CAP_NAME.pcap") bytes"
    # what the sending Postfix said about the message
    grep -E 'postfix/smtp\[|postfix/qmgr\[' "$CLI_PF/maillog" | sed 's/^/   /' >&2 || true
    cp "$CLI_PF/maillog" "$WORK/$CAP_NAME.client.log"
    [ -n "$SRV_PF" ] && cp "$SRV_PF/maillog" "$WORK/$CAP_NAME.server.log"
    return 0
}

# ---------------------------------------------------------------- scenarios
P=

# 1. MX 10 mx1, MX 20 mx2. The client verifies certificates (level verify,
# trusting only the issuer of mx2's certificate): mx1's is not trusted, so
# the delivery to mx1 stops after the TLS handshake and Postfix goes on to mx2.
scenario_mx_fallback() {
    dns_start --mx-host="$DOMAIN,$MX1,10" --mx-host="$DOMAIN,$MX2,20"
    srv_start "$(mx_service "$MX1" "$MX1_IP" "$P/mx1.key" "$P/mx1.pem")" \
              "$(mx_service "$MX2" "$MX2_IP" "$P/mx2.key" "$P/mx2.pem")"
    cli_start "smtp_tls_security_level = verify" "smtp_tls_CAfile = $P/trusted-ca.pem"
    cap_start attempts-mx1-tls-fails-mx2-ok
    submit mxfallback.0001 "Delivery after a failed MX"
    wait_cli_log 'status=sent'
    cap_stop
    cli_stop; srv_stop; dns_stop
}

# 2. One MX whose STARTTLS handshake fails (the server speaks only TLS 1.3,
# the client at most TLS 1.2), client at level may. Postfix falls back to
# clear text only for a message that waited at least minimal_backoff_time
# (5 s here) before this delivery attempt (smtp_proto.c,
# PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE): the fresh message is
# deferred; on the retry 7 s later the handshake fails again and Postfix
# delivers at once over a new connection, in clear text.
scenario_clear_fallback() {
    dns_start --mx-host="$DOMAIN,$MX1,10"
    srv_start "$(mx_service "$MX1" "$MX1_IP" "$P/mx1.key" "$P/mx1.pem" -o smtpd_tls_protocols=\>=TLSv1.3)"
    cli_start "smtp_tls_security_level = may" "smtp_tls_protocols = <=TLSv1.2"
    cap_start attempts-tls-fails-then-clear
    submit clearfallback.0001 "Delivery after a failed TLS handshake"
    wait_cli_log 'status=deferred'
    sleep 7
    flush_queue
    wait_cli_log 'status=sent'
    cap_stop
    cli_stop; srv_stop; dns_stop
}

# 3. Greylisting: mx1 (Postfix, no STARTTLS, so that every reply is in clear
# text) asks greylist-policy.py about each recipient; the first RCPT gets
# 450 4.7.1, the retry (postqueue -f, 4 s later) is accepted.
scenario_greylisting() {
    dns_start --mx-host="$DOMAIN,$MX1,10"
    grey_start
    srv_start "$(mx_service "$MX1" "$MX1_IP" "$P/mx1.key" "$P/mx1.pem" -o smtpd_tls_security_level=none \
                 -o smtpd_recipient_restrictions=reject_unauth_destination,check_policy_service,inet:127.0.0.1:10023)"
    cli_start "smtp_tls_security_level = may"
    cap_start attempts-greylisting
    submit greylist.0001 "Delivery after greylisting"
    wait_cli_log 'status=deferred'
    sleep 4
    flush_queue
    wait_cli_log 'status=sent'
    cap_stop
    cli_stop; srv_stop; grey_stop; dns_stop
}

# 4. DANE: the client (level dane, DNSSEC look-ups) gets MX, A and a TLSA
# record 3 1 1 for _25._tcp.mx1.example.test from dnsmasq, through adflag.py
# (answers marked authentic, as a validating resolver would); the delivery to
# mx1 is over TLS, mx1's certificate (issued by a CA the client does not
# know) matched against the TLSA record.
scenario_dane() {
    local tlsa
    tlsa=$(cat "$P/mx1.tlsa")
    DNS_AD=1 dns_start --mx-host="$DOMAIN,$MX1,10" --dns-rr="_25._tcp.$MX1,52,030101$tlsa"
    # glibc sets AD in its queries and passes AD on in answers only with
    # trust-ad (rewritten in place: the file is bind-mounted into the namespace)
    printf 'nameserver %s\noptions edns0 trust-ad\n' "$DNS_IP" >"/etc/netns/$CLI_NS/resolv.conf"
    in_cli dig +dnssec +noall +comments "@$DNS_IP" "_25._tcp.$MX1" TLSA | grep -q 'flags:.* ad' ||
        die "no AD bit on the TLSA answer"
    srv_start "$(mx_service "$MX1" "$MX1_IP" "$P/mx1.key" "$P/mx1.pem")"
    cli_start "smtp_tls_security_level = dane" "smtp_dns_support_level = dnssec" "dnssec_probe ="
    cap_start attempts-dane-tlsa
    submit dane.0001 "Delivery with DANE"
    wait_cli_log 'status=sent'
    cap_stop
    grep -q 'Verified TLS connection established' "$WORK/attempts-dane-tlsa.client.log" ||
        die "the DANE delivery was not verified"
    cli_stop; srv_stop; dns_stop
    echo "nameserver $DNS_IP" >"/etc/netns/$CLI_NS/resolv.conf"
}

# ---------------------------------------------------------------- main
main() {
    install_packages
    WORK=$(mktemp -d /tmp/mxa-attempts.XXXXXX)
    chmod 0755 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$OUT"
    make_pki
    P=$WORK/pki
    net_up
    want mx-fallback && scenario_mx_fallback
    want clear-fallback && scenario_clear_fallback
    want greylisting && scenario_greylisting
    want dane && scenario_dane
    if [ ${#WANT[@]} -eq 0 ]; then
        check_captures || die "capture check failed"
    fi
    log "done"
}

main "$@"
