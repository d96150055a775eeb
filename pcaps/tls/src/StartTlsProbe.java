// Minimal SMTP client that performs STARTTLS by hand on a plain socket and
// then runs the TLS handshake with the JDK's own TLS stack (SunJSSE).
//
// Usage: java StartTlsProbe ADDRESS PORT TLS_NAME EHLO_NAME PROTOCOL
//   ADDRESS   IP address to connect to
//   TLS_NAME  host name used for SNI (the JDK sends it when it is a DNS name)
//   PROTOCOL  e.g. TLSv1.2 or TLSv1.3
// Trust comes from the JDK defaults or from -Djavax.net.ssl.trustStore=...
// Exit status: 0 when the handshake succeeded, 2 when it failed.

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

public final class StartTlsProbe {
    private StartTlsProbe() {
    }

    /** Reads one (possibly multi-line) SMTP reply and returns its last line. */
    private static String reply(BufferedReader in) throws IOException {
        String line;
        do {
            line = in.readLine();
            if (line == null) {
                throw new IOException("connection closed while waiting for a reply");
            }
            System.out.println("S: " + line);
        } while (line.length() > 3 && line.charAt(3) == '-');
        return line;
    }

    private static void send(OutputStream out, String cmd) throws IOException {
        System.out.println("C: " + cmd);
        out.write((cmd + "\r\n").getBytes(StandardCharsets.US_ASCII));
        out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: StartTlsProbe ADDRESS PORT TLS_NAME EHLO_NAME PROTOCOL");
            System.exit(64);
        }
        String address = args[0];
        int port = Integer.parseInt(args[1]);
        String tlsName = args[2];
        String ehlo = args[3];
        String protocol = args[4];

        Socket plain = new Socket();
        plain.connect(new InetSocketAddress(address, port), 5000);
        plain.setSoTimeout(10000);
        BufferedReader in = new BufferedReader(
                new InputStreamReader(plain.getInputStream(), StandardCharsets.US_ASCII));
        OutputStream out = plain.getOutputStream();

        reply(in);
        send(out, "EHLO " + ehlo);
        reply(in);
        send(out, "STARTTLS");
        String ready = reply(in);
        if (!ready.startsWith("220")) {
            send(out, "QUIT");
            reply(in);
            plain.close();
            System.exit(3);
        }

        SSLSocketFactory factory = (SSLSocketFactory) SSLSocketFactory.getDefault();
        SSLSocket tls = (SSLSocket) factory.createSocket(plain, tlsName, port, true);
        tls.setEnabledProtocols(new String[] {protocol});
        int status = 0;
        try {
            tls.startHandshake();
            System.out.println("handshake ok: " + tls.getSession().getProtocol() + " "
                    + tls.getSession().getCipherSuite());
            BufferedReader tin = new BufferedReader(
                    new InputStreamReader(tls.getInputStream(), StandardCharsets.US_ASCII));
            OutputStream tout = tls.getOutputStream();
            send(tout, "EHLO " + ehlo);
            reply(tin);
            send(tout, "QUIT");
            reply(tin);
        } catch (SSLException e) {
            System.out.println("handshake failed: " + e);
            status = 2;
        } finally {
            tls.close();
        }
        System.exit(status);
    }
}
