/* floor.c - the speed floor: read every packet with libpcap and do nothing
 * else but touch its bytes.
 *
 * usage: floor FILE
 * Prints "packets N bytes N sum N" on standard output.  The sum of the last
 * captured byte of every packet keeps the compiler from removing the loop.
 */
#define _DEFAULT_SOURCE 1   /* libpcap headers use u_char, u_int */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    char err[PCAP_ERRBUF_SIZE];
    if (argc != 2) {
        fprintf(stderr, "usage: floor FILE\n");
        return 1;
    }
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) {
        fprintf(stderr, "floor: %s\n", err);
        return 2;
    }
    struct pcap_pkthdr *h;
    const unsigned char *d;
    unsigned long long packets = 0, bytes = 0, sum = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        packets++;
        bytes += h->caplen;
        if (h->caplen) sum += d[h->caplen - 1];
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "floor: %s\n", pcap_geterr(p));
        pcap_close(p);
        return 3;
    }
    pcap_close(p);
    printf("packets %llu bytes %llu sum %llu\n", packets, bytes, sum);
    return 0;
}
