#!/bin/bash
# make.sh - regenerate the SMTP-over-TLS captures in this directory together
# with the NSS key log (SSLKEYLOGFILE format) that decrypts each of them.
#
# Run as root on Debian 12:   bash pcaps/keylog/make.sh
#
# Every capture is one real connection between Postfix and a real TLS client
# (openssl s_client, Python smtplib + ssl, gnutls-cli) across a veth pair
# joining two network namespaces:
#
#   mxk-cli (10.27.0.1, veth mxk-c0)  <---->  mxk-srv (10.27.0.2, veth mxk-s0)
#
# Nothing else is routed from either namespace; all traffic stays on the pair.
# tcpdump records on the server's end of the pair.  The client writes the key
# log of its own session (NAME.keys beside NAME.pcap).  The script makes a
# private PKI in a temporary directory, keeps only its public certificates
# under certs/, and removes its namespaces, processes and temporary files
# when it exits.
#
# Environment:
#   MXT_KEYLOG_OUT   where to write the captures (default: this directory)
#   MXT_KEYLOG_KEEP  set to 1 to keep the temporary work directory (debugging)

set -euo pipefail
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${MXT_KEYLOG_OUT:-$HERE}
PY=/usr/bin/python3
# the lab root of pcaps/tls: it did not sign anything this script makes, so a
# client that trusts only it rejects the server (tls13-rejected-*)
FOREIGN_ROOT=$HERE/../tls/certs/root-ca.pem

CLI_NS=mxk-cli
SRV_NS=mxk-srv
CLI_IF=mxk-c0
SRV_IF=mxk-s0
CLI_MAC=0e:27:00:00:00:01
SRV_MAC=0e:27:00:00:00:02
CLI_IP=10.27.0.1
SRV_IP=10.27.0.2
SERVER_NAME=mail.testlab.example
EHLO_NAME=client.testlab.example
MAIL_FROM=alice@client.testlab.example
RCPT_TO=bob@testlab.example
# SASL account of tls13-starttls-auth (test values, nothing else uses them)
AUTH_USER=alice@testlab.example
AUTH_PASS=testpass

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'make.sh: %s\n' "$*" >&2; exit 1; }


# --------------------------------------------------------------------------
# 1. packages
# --------------------------------------------------------------------------
install_packages() {
    local want=(postfix sasl2-bin libsasl2-modules libsasl2-modules-db tcpdump tshark
                python3 openssl gnutls-bin iproute2 iputils-ping ethtool procps util-linux ca-certificates)
    local missing=() p
    for p in "${want[@]}"; do
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
    for c in postconf postfix saslpasswd2 tcpdump tshark openssl gnutls-cli ip ping ethtool ss unshare; do
        command -v "$c" >/dev/null || die "missing command after install: $c"
    done
    "$PY" -c 'import ssl; ssl.SSLContext().keylog_filename' 2>/dev/null ||
        die "$PY has no ssl.SSLContext.keylog_filename"
}

# --------------------------------------------------------------------------
# state and teardown
# --------------------------------------------------------------------------
WORK=
TCPDUMP_PID=
PF_DIR=
NETNS_MADE=0

stop_pid() { # stop_pid PID SIGNAL - signal one process we started and reap it
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
    pf_stop
    if [ "$NETNS_MADE" = 1 ]; then
        local ns pid
        for ns in "$CLI_NS" "$SRV_NS"; do
            # anything still running inside our namespaces was started here
            for pid in $(ip netns pids "$ns" 2>/dev/null); do stop_pid "$pid" TERM; done
            ip netns del "$ns" 2>/dev/null
            rm -rf "/etc/netns/$ns"
        done
    fi
    if [ -n "$WORK" ] && [ "${MXT_KEYLOG_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
    [ -n "$WORK" ] && [ "${MXT_KEYLOG_KEEP:-0}" = 1 ] && log "work directory kept: $WORK"
    exit $rc
}

# --------------------------------------------------------------------------
# 2. network namespaces
# --------------------------------------------------------------------------
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
    local side dev addr mac
    for side in cli srv; do
        if [ "$side" = cli ]; then ns=$CLI_NS dev=$CLI_IF addr=$CLI_IP mac=$CLI_MAC
        else ns=$SRV_NS dev=$SRV_IF addr=$SRV_IP mac=$SRV_MAC; fi
        # IPv4 only: no router solicitations or MLD reports in the captures
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "$dev" address "$mac" mtu 1500
        ip -n "$ns" addr add "$addr/24" dev "$dev"
        # wire-sized segments and real checksums in the captures
        ip netns exec "$ns" ethtool -K "$dev" tx off tso off gso off gro off >/dev/null 2>&1 ||
            ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null
        ip -n "$ns" link set "$dev" up
        # per-namespace resolver and hosts, bind-mounted by "ip netns exec";
        # the clients dial addresses, so no name is ever looked up
        mkdir -p "/etc/netns/$ns"
        echo "nameserver $SRV_IP" >"/etc/netns/$ns/resolv.conf"
        printf '127.0.0.1\tlocalhost\n%s\t%s\n%s\t%s\n' "$CLI_IP" "$EHLO_NAME" "$SRV_IP" "$SERVER_NAME" \
            >"/etc/netns/$ns/hosts"
    done
    ip netns exec "$CLI_NS" ping -c 1 -W 2 "$SRV_IP" >/dev/null || die "veth pair does not pass traffic"
}

in_srv() { ip netns exec "$SRV_NS" "$@"; }

# --------------------------------------------------------------------------
# 3. PKI (private keys stay in the work directory)
# --------------------------------------------------------------------------
make_pki() {
    local d=$WORK/pki
    mkdir -p "$d/newcerts"
    : >"$d/index.txt"
    echo 2000 >"$d/serial"
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
[ intermediate_ext ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ server_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:mail.testlab.example, DNS:relay.testlab.example
EOF
    (
        cd "$d"
        local k
        for k in root inter server; do
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k.key" 2>/dev/null
        done
        # fixed validity windows: the certificates do not depend on the clock
        local ca_from=20190101000000Z ok_from=20250101000000Z ok_to=20350101000000Z
        openssl req -new -key root.key -subj "/O=mxtrace test lab/CN=mxtrace Key Log Test Root CA" -out root.csr
        openssl ca -batch -config ca.cnf -selfsign -extensions root_ext -keyfile root.key \
            -startdate "$ca_from" -enddate 20440101000000Z -notext -in root.csr -out root.pem 2>/dev/null
        openssl req -new -key inter.key -subj "/O=mxtrace test lab/CN=mxtrace Key Log Test Intermediate CA" \
            -out inter.csr
        openssl ca -batch -config ca.cnf -extensions intermediate_ext -cert root.pem -keyfile root.key \
            -startdate "$ca_from" -enddate 20390101000000Z -notext -in inter.csr -out inter.pem 2>/dev/null
        openssl req -new -key server.key -subj "/O=mxtrace test lab/CN=$SERVER_NAME" -out server.csr
        openssl ca -batch -config ca.cnf -extensions server_ext -cert inter.pem -keyfile inter.key \
            -startdate "$ok_from" -enddate "$ok_to" -notext -in server.csr -out server.pem 2>/dev/null
        # what Postfix presents: leaf first, then the intermediate
        cat server.pem inter.pem >server-chain.pem
        openssl verify -CAfile root.pem -untrusted inter.pem server.pem >/dev/null
        if openssl verify -CAfile "$FOREIGN_ROOT" -untrusted inter.pem server.pem >/dev/null 2>&1; then
            echo "server.pem unexpectedly verifies against $FOREIGN_ROOT" >&2; exit 1
        fi
    )
    mkdir -p "$OUT/certs"
    cp "$d/root.pem" "$OUT/certs/root-ca.pem"
    cp "$d/inter.pem" "$OUT/certs/intermediate-ca.pem"
    cp "$d/server.pem" "$OUT/certs/mail.testlab.example.pem"
}

# --------------------------------------------------------------------------
# 4. Postfix: a private instance inside mxk-srv, with Cyrus SASL (sasldb)
# --------------------------------------------------------------------------
pf_start() {
    local P=$WORK/pki
    PF_DIR=$WORK/postfix
    # Debian's smtpd reads the Cyrus SASL configuration from
    # $config_directory/sasl/smtpd.conf
    local sasl=$PF_DIR/etc/sasl
    mkdir -p "$PF_DIR/etc" "$PF_DIR/spool" "$PF_DIR/data" "$sasl"
    chown postfix "$PF_DIR/data"
    # one account in a private sasldb, readable by smtpd (which runs as postfix)
    printf '%s' "$AUTH_PASS" | saslpasswd2 -p -c -f "$sasl/sasldb2" \
        -u "${AUTH_USER#*@}" "${AUTH_USER%@*}"
    chgrp postfix "$sasl/sasldb2"
    chmod 0640 "$sasl/sasldb2"
    cat >"$sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $sasl/sasldb2
mech_list: PLAIN LOGIN
EOF
    cat >"$PF_DIR/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF_DIR/spool
data_directory = $PF_DIR/data
maillog_file_prefixes = $PF_DIR
maillog_file = $PF_DIR/maillog
myhostname = $SERVER_NAME
mydomain = testlab.example
myorigin = \$mydomain
mydestination = testlab.example, \$myhostname
inet_interfaces = $SRV_IP
inet_protocols = ipv4
mynetworks = 10.27.0.0/24, 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:message accepted by test sink
smtpd_peername_lookup = no
biff = no
smtpd_tls_security_level = may
smtpd_tls_chain_files = $P/server.key, $P/server-chain.pem
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $sasl
smtpd_sasl_security_options = noanonymous
smtpd_tls_auth_only = yes
EOF
    cat >"$PF_DIR/etc/master.cf" <<'EOF'
smtp       inet n - n - - smtpd
smtps      inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
pickup     unix n - n 60 1 pickup
cleanup    unix n - n - 0 cleanup
qmgr       unix n - n 300 1 qmgr
tlsmgr     unix - - n 1000? 1 tlsmgr
rewrite    unix - - n - - trivial-rewrite
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
flush      unix n - n 1000? 0 flush
proxymap   unix - - n - - proxymap
smtp-out   unix - - n - - smtp
error      unix - - n - - error
retry      unix - - n - - error
discard    unix - - n - - discard
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
    in_srv postfix -c "$PF_DIR/etc" start >>"$WORK/postfix-start.log" 2>&1 ||
        { cat "$WORK/postfix-start.log" "$PF_DIR/maillog" >&2 2>/dev/null; die "postfix did not start"; }
    local i
    for i in $(seq 100); do
        in_srv ss -Hltn "sport = :25" | grep -q LISTEN && in_srv ss -Hltn "sport = :465" | grep -q LISTEN && return 0
        sleep 0.1
    done
    die "postfix is not listening"
}

pf_stop() {
    [ -n "$PF_DIR" ] && [ -f "$PF_DIR/spool/pid/master.pid" ] || { PF_DIR=; return 0; }
    local pid
    pid=$(tr -dc 0-9 <"$PF_DIR/spool/pid/master.pid")
    in_srv postfix -c "$PF_DIR/etc" stop >>"$WORK/postfix-start.log" 2>&1 || true
    local i
    for i in $(seq 100); do
        { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || break
        sleep 0.1
    done
    { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } && in_srv postfix -c "$PF_DIR/etc" abort >/dev/null 2>&1
    rm -f "$PF_DIR/spool/pid/master.pid"
    PF_DIR=
}

# --------------------------------------------------------------------------
# 5. capture
# --------------------------------------------------------------------------
CAP_NAME=
cap_start() { # cap_start NAME PORT
    CAP_NAME=$1
    rm -f "$WORK/$CAP_NAME.pcap" "$WORK/$CAP_NAME.keys" "$WORK/tcpdump.err"
    # background jobs of a non-interactive shell ignore SIGINT; tcpdump must not
    ip netns exec "$SRV_NS" env --default-signal=INT tcpdump -Z root -n -i "$SRV_IF" \
        -w "$WORK/$CAP_NAME.pcap" "tcp port $2" 2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    local i
    for i in $(seq 100); do
        grep -q 'listening on' "$WORK/tcpdump.err" 2>/dev/null && return 0
        sleep 0.1
    done
    die "tcpdump did not start"
}

cap_stop() {
    sleep 1
    stop_pid "$TCPDUMP_PID" INT
    TCPDUMP_PID=
    grep -q 'packets captured' "$WORK/tcpdump.err" || die "tcpdump did not stop cleanly for $CAP_NAME"
    [ -s "$WORK/$CAP_NAME.keys" ] || die "$CAP_NAME: the client wrote no key log"
    cp "$WORK/$CAP_NAME.pcap" "$OUT/$CAP_NAME.pcap"
    cp "$WORK/$CAP_NAME.keys" "$OUT/$CAP_NAME.keys"
    log "$CAP_NAME: $(stat -c %s "$OUT/$CAP_NAME.pcap") bytes, $(grep -vc '^#' "$OUT/$CAP_NAME.keys") key log lines"
}

# run_client EXPECTED_RC CMD... - run a client in mxk-cli and check its exit status
run_client() {
    local expect_rc=$1; shift
    local rc=0
    echo "--- $*" >>"$WORK/clients.log"
    # own UTS namespace: the client sees the host name client.testlab.example
    timeout 60 ip netns exec "$CLI_NS" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$EHLO_NAME" "$@" \
        >>"$WORK/clients.log" 2>&1 || rc=$?
    if [ "$rc" != "$expect_rc" ]; then
        tail -n 30 "$WORK/clients.log" >&2
        die "client exited with $rc, expected $expect_rc: $*"
    fi
}

# chat EXPECTED_RC CMD... - an expect-like SMTP dialogue over a client that
# relays stdin/stdout through TLS (openssl s_client).  The script comes on
# stdin, one step a line:
#   send TEXT     write TEXT and CR LF (TEXT may hold \r\n escapes: one write)
#   expect CODE   read until the last line of a reply with that code
chat() {
    local expect_rc=$1; shift
    local script op arg line rc=0 got
    script=$(cat)
    echo "--- $*" >>"$WORK/clients.log"
    # stdout: what the server sent, through the tunnel; stderr (connection
    # summary, verification result, errors) goes to the log
    coproc CHAT { exec timeout 60 ip netns exec "$CLI_NS" unshare --uts \
        sh -c 'hostname "$0" && exec "$@"' "$EHLO_NAME" "$@" 2>>"$WORK/clients.log"; }
    local from=${CHAT[0]} to=${CHAT[1]} pid=$CHAT_PID
    while read -r op arg; do
        case $op in
            send)
                # /usr/bin/printf: one write (bash's own printf flushes
                # stdout at each newline), so one read and one TLS record
                env printf '%b\r\n' "$arg" >&"$to"
                printf 'C: %b\n' "$arg" >>"$WORK/clients.log"
                ;;
            expect)
                got=
                while IFS= read -r -t 20 line <&"$from"; do
                    line=${line%$'\r'}
                    echo "S: $line" >>"$WORK/clients.log"
                    case $line in
                        "$arg "*|"$arg") got=1; break ;;
                        [2-5][0-9][0-9]" "*|[2-5][0-9][0-9]) break ;;
                    esac
                done
                if [ -z "$got" ]; then
                    tail -n 30 "$WORK/clients.log" >&2
                    die "$CAP_NAME: no $arg reply (last line: ${line:-none})"
                fi
                ;;
            '') ;;
            *) die "chat: unknown step $op" ;;
        esac
    done <<<"$script"
    # what the client prints until the server closes the connection
    exec {to}>&-
    while IFS= read -r line <&"$from"; do echo "S: ${line%$'\r'}" >>"$WORK/clients.log"; done
    wait "$pid" || rc=$?
    if [ "$rc" != "$expect_rc" ]; then
        tail -n 30 "$WORK/clients.log" >&2
        die "client exited with $rc, expected $expect_rc: $*"
    fi
}

# --------------------------------------------------------------------------
# the captures
# --------------------------------------------------------------------------
make_captures() {
    local P=$WORK/pki
    # s_client: STARTTLS with its own EHLO, SNI and host-name check, no
    # command letters (a line starting with R or Q is data), stays up after
    # stdin closes until the server closes
    local s_client=(openssl s_client -connect "$SRV_IP:25" -starttls smtp -name "$EHLO_NAME"
                    -servername "$SERVER_NAME" -verify_hostname "$SERVER_NAME" -verify_return_error
                    -ign_eof -nocommands -brief)
    local plain
    plain=$(printf '\0%s\0%s' "$AUTH_USER" "$AUTH_PASS" | base64 -w0)
    local body="From: <$MAIL_FROM>\\r\\nTo: <$RCPT_TO>\\r\\nSubject: mxtrace key log capture\\r\\n\\r\\nTest message sent over TLS.\\r\\n."

    pf_start

    cap_start tls13-starttls-delivery 25
    chat 0 "${s_client[@]}" -tls1_3 -CAfile "$P/root.pem" -keylogfile "$WORK/$CAP_NAME.keys" <<EOF
send EHLO $EHLO_NAME
expect 250
send MAIL FROM:<$MAIL_FROM>
expect 250
send RCPT TO:<$RCPT_TO>
expect 250
send DATA
expect 354
send $body
expect 250
send QUIT
expect 221
EOF
    cap_stop

    cap_start tls13-starttls-auth 25
    chat 0 "${s_client[@]}" -tls1_3 -CAfile "$P/root.pem" -keylogfile "$WORK/$CAP_NAME.keys" <<EOF
send EHLO $EHLO_NAME
expect 250
send AUTH PLAIN $plain
expect 235
send MAIL FROM:<$MAIL_FROM>
expect 250
send RCPT TO:<$RCPT_TO>
expect 250
send DATA
expect 354
send $body
expect 250
send QUIT
expect 221
EOF
    cap_stop

    cap_start tls13-465-delivery 465
    run_client 0 "$PY" "$HERE/src/smtps_keylog_client.py" --host "$SERVER_NAME" --address "$SRV_IP" \
        --port 465 --tls 1.3 --cafile "$P/root.pem" --keylog "$WORK/$CAP_NAME.keys"
    cap_stop

    # The client trusts only a root that did not sign the server's chain and
    # stops at the server's Certificate.  GnuTLS has switched both directions
    # to the handshake keys by then: its alert is an encrypted record.
    # gnutls-cli writes the key log named by SSLKEYLOGFILE; with
    # --starttls-proto it sends EHLO with its server argument.
    cap_start tls13-rejected-keylog 25
    run_client 1 env SSLKEYLOGFILE="$WORK/$CAP_NAME.keys" gnutls-cli --starttls-proto=smtp --port 25 \
        --sni-hostname "$SERVER_NAME" --verify-hostname "$SERVER_NAME" --x509cafile "$FOREIGN_ROOT" \
        --priority NORMAL:-VERS-ALL:+VERS-TLS1.3 "$SERVER_NAME" </dev/null
    cap_stop

    # The same rejection by OpenSSL: its client still writes with no record
    # protection when it rejects the certificate, so the alert is in clear,
    # and its key log holds only the server's handshake secret (enough to
    # read the server's Certificate).
    cap_start tls13-rejected-openssl-keylog 25
    chat 1 "${s_client[@]}" -tls1_3 -CAfile "$FOREIGN_ROOT" -keylogfile "$WORK/$CAP_NAME.keys" </dev/null
    cap_stop

    cap_start tls12-starttls-keylog 25
    chat 0 "${s_client[@]}" -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -CAfile "$P/root.pem" \
        -keylogfile "$WORK/$CAP_NAME.keys" <<EOF
send EHLO $EHLO_NAME
expect 250
send MAIL FROM:<$MAIL_FROM>
expect 250
send RCPT TO:<$RCPT_TO>
expect 250
send DATA
expect 354
send $body
expect 250
send QUIT
expect 221
EOF
    cap_stop

    pf_stop
}

# --------------------------------------------------------------------------
# self-check with tshark: what the key log makes readable, and what is
# readable without it
# --------------------------------------------------------------------------
# One line a capture:
#   FILE  VERSION  CIPHER  KEY-LOG-LABELS
#   COMMANDS-WITH-KEYS  COMMANDS-WITHOUT  ALERTS-WITH-KEYS  ALERTS-WITHOUT
# labels: the key log's record types, sorted; commands: tshark's
# smtp.req.command in order; alerts: SENDER:LEVEL:DESCRIPTION of each alert
# tshark can name; lists comma-separated, "-" = none
TLS13_LABELS=CLIENT_HANDSHAKE_TRAFFIC_SECRET,CLIENT_TRAFFIC_SECRET_0,EXPORTER_SECRET,SERVER_HANDSHAKE_TRAFFIC_SECRET,SERVER_TRAFFIC_SECRET_0
EXPECT="
tls13-starttls-delivery       0x0304 0x1302 $TLS13_LABELS EHLO,STAR,EHLO,MAIL,RCPT,DATA,QUIT      EHLO,STAR $SRV_IP:1:0,$CLI_IP:1:0 -
tls13-starttls-auth           0x0304 0x1302 $TLS13_LABELS EHLO,STAR,EHLO,AUTH,MAIL,RCPT,DATA,QUIT EHLO,STAR $SRV_IP:1:0,$CLI_IP:1:0 -
tls13-465-delivery            0x0304 0x1302 $TLS13_LABELS ehlo,mail,rcpt,data,quit                - $SRV_IP:1:0 -
tls13-rejected-keylog         0x0304 0x1302 CLIENT_HANDSHAKE_TRAFFIC_SECRET,SERVER_HANDSHAKE_TRAFFIC_SECRET EHLO,STAR EHLO,STAR $CLI_IP:2:42 -
tls13-rejected-openssl-keylog 0x0304 0x1302 SERVER_HANDSHAKE_TRAFFIC_SECRET EHLO,STAR EHLO,STAR $CLI_IP:2:48 $CLI_IP:2:48
tls12-starttls-keylog         0x0303 0xc02f CLIENT_RANDOM EHLO,STAR,EHLO,MAIL,RCPT,DATA,QUIT      EHLO,STAR $SRV_IP:1:0,$CLI_IP:1:0 -
"

join_lines() { awk 'NF {printf "%s%s", (n++ ? "," : ""), $0} END {if (!n) printf "-"}'; }

# tshark_cmds PCAP [tshark options] - SMTP commands as tshark reads them
tshark_cmds() {
    local pcap=$1; shift
    tshark -r "$pcap" -n "$@" -Y smtp.req.command -T fields -e smtp.req.command 2>/dev/null |
        tr -d '\r' | tr ',' '\n' | join_lines
}

# tshark_alerts PCAP [tshark options] - alerts whose description tshark reads
tshark_alerts() {
    local pcap=$1; shift
    tshark -r "$pcap" -n "$@" -Y tls.alert_message.desc -T fields -E occurrence=f \
        -e ip.src -e tls.alert_message.level -e tls.alert_message.desc 2>/dev/null |
        awk -F'\t' 'NF {printf "%s%s:%s:%s", (n++ ? "," : ""), $1, $2, $3} END {if (!n) printf "-"}'
}

check_captures() {
    local bad=0 f want got pcap keys size
    local ver cipher labels cmds plain_cmds alerts plain_alerts
    while read -r f ver cipher labels cmds plain_cmds alerts plain_alerts; do
        [ -n "$f" ] || continue
        pcap=$OUT/$f.pcap
        keys=(-o "tls.keylog_file:$OUT/$f.keys")
        size=$(stat -c %s "$pcap")
        [ "$size" -lt 65536 ] || { echo "FAIL $f: $size bytes" >&2; bad=1; }
        want="$ver $cipher $labels $cmds $plain_cmds $alerts $plain_alerts"
        # negotiated version: ServerHello's supported_versions, else its version field
        got="$(tshark -r "$pcap" -n -Y 'tls.handshake.type == 2' -T fields \
                 -e tls.handshake.extensions.supported_version -e tls.handshake.version 2>/dev/null |
               awk -F'\t' '{print ($1 != "" ? $1 : $2)}' | head -n 1)"
        got+=" $(tshark -r "$pcap" -n -Y 'tls.handshake.type == 2' -T fields \
                   -e tls.handshake.ciphersuite 2>/dev/null | head -n 1)"
        got+=" $(grep -v '^#' "$OUT/$f.keys" | awk '{print $1}' | sort -u | join_lines)"
        got+=" $(tshark_cmds "$pcap" "${keys[@]}") $(tshark_cmds "$pcap" -o tls.keylog_file:)"
        got+=" $(tshark_alerts "$pcap" "${keys[@]}") $(tshark_alerts "$pcap" -o tls.keylog_file:)"
        if [ "$got" = "$want" ]; then
            printf 'ok   %-30s %s\n' "$f" "$got" >&2
        else
            printf 'FAIL %-30s %s\n     want %-25s %s\n' "$f" "$got" "" "$want" >&2
            bad=1
        fi
    done <<<"$EXPECT"
    return $bad
}

# --------------------------------------------------------------------------
main() {
    if [ "${1:-}" = check ]; then check_captures; exit; fi
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    [ -f "$FOREIGN_ROOT" ] || die "missing $FOREIGN_ROOT"
    install_packages
    WORK=$(mktemp -d /tmp/mxt-keylog.XXXXXX)
    chmod 0755 "$WORK"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$OUT"
    make_pki
    net_up
    make_captures
    log "alerts received by Postfix, from its log:"
    grep -o 'postfix/[a-z]*/*smtpd.*alert number [0-9]*' "$WORK/postfix/maillog" | sed 's/^/   /' >&2 || true
    check_captures || die "capture check failed"
    log "done"
}

main "$@"
