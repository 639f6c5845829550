/* A delay line between pairs of TUN devices: the latency of the real-Linux-TCP lab.
 *
 * delayline_reference.py compiles this at run time (gcc, into a temporary directory) and runs it
 * as root with real-time priority. Usage:
 *
 *     delayline MAX_SECONDS NETNS_A,DEV_A,NETNS_B,DEV_B,DELAY_US [...]
 *
 * For every link it creates TUN device DEV_A (IFF_TUN, no packet info) in network namespace
 * NETNS_A (/run/netns/NETNS_A) and DEV_B in NETNS_B. Each packet the kernel sends out of one end
 * (after that device's qdisc, where the lab's tbf shapes it) is read, held for DELAY_US
 * microseconds and written into the other end, where the kernel receives it: a constant one-way
 * delay in each direction, first in first out, so order is preserved. Nothing is shaped here;
 * rate and drop-tail queue are tc's (tbf on each TUN's egress).
 *
 * The devices are not persistent: they vanish when this process exits. It exits on "quit" or
 * end of file on stdin (the parent is gone), on SIGINT/SIGTERM, and after MAX_SECONDS at the
 * latest. It prints "ready" once every device exists, and one JSON line of counters per
 * "stats" line on stdin: per link and direction the packets read (in), written (out), dropped
 * (ring full or write failed), still held (queued), bytes, the largest packet, and how late the
 * writes were against their due time (the delay line's own precision). It waits in ppoll with
 * a timeout up to the next due packet (no busy spinning): with SCHED_FIFO the timer has no
 * slack.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINKS 16
#define SLOTS 8192          /* packets held per direction: 150 ms at 650 Mbit/s of 1500 B */
#define SLOT_BYTES 2048     /* > MTU 1500 */
#define READ_BATCH 256      /* packets read from one device per wake-up at most */
#define MAX_WAIT_NS 50000000LL

struct direction {
    int in_fd, out_fd;
    int64_t delay_ns;
    unsigned char *buf;     /* SLOTS x SLOT_BYTES */
    uint16_t len[SLOTS];
    int64_t due[SLOTS];
    unsigned head, count;
    uint64_t in, out, dropped, bytes, max_len;
    uint64_t late_over_100us, late_over_1ms, late_over_4ms;
    int64_t late_max_ns;
    double late_sum_ns;
};

static struct direction dirs[2 * MAX_LINKS];
static int ndirs;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int open_tun_in(const char *netns, const char *dev, int home)
{
    char path[256];
    snprintf(path, sizeof path, "/run/netns/%s", netns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "delayline: cannot enter %s: %s\n", path, strerror(errno));
        return -1;
    }
    close(nsfd);
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
    if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) != 0) {
        fprintf(stderr, "delayline: cannot create TUN %s in %s: %s\n", dev, netns,
                strerror(errno));
        return -1;
    }
    if (setns(home, CLONE_NEWNET) != 0) {
        fprintf(stderr, "delayline: cannot return to the first namespace: %s\n",
                strerror(errno));
        return -1;
    }
    return fd;
}

static void print_stats(void)
{
    printf("{\"directions\": [");
    for (int d = 0; d < ndirs; d++) {
        struct direction *q = &dirs[d];
        double mean = q->out ? q->late_sum_ns / q->out : 0.0;
        printf("%s{\"link\": %d, \"way\": \"%s\", \"in\": %llu, \"out\": %llu, "
               "\"dropped\": %llu, \"queued\": %u, \"bytes\": %llu, \"max_len\": %llu, "
               "\"late_mean_us\": %.1f, \"late_max_us\": %.1f, \"late_over_100us\": %llu, "
               "\"late_over_1ms\": %llu, \"late_over_4ms\": %llu}",
               d ? ", " : "", d / 2, d % 2 ? "b->a" : "a->b", (unsigned long long)q->in,
               (unsigned long long)q->out, (unsigned long long)q->dropped, q->count,
               (unsigned long long)q->bytes, (unsigned long long)q->max_len, mean / 1e3,
               q->late_max_ns / 1e3, (unsigned long long)q->late_over_100us,
               (unsigned long long)q->late_over_1ms, (unsigned long long)q->late_over_4ms);
    }
    printf("]}\n");
    fflush(stdout);
}

static void release_due(struct direction *q, int64_t now)
{
    while (q->count && q->due[q->head] <= now) {
        unsigned i = q->head;
        ssize_t n = write(q->out_fd, q->buf + (size_t)i * SLOT_BYTES, q->len[i]);
        if (n == (ssize_t)q->len[i]) {
            int64_t late = now - q->due[i];
            q->out++;
            q->late_sum_ns += (double)late;
            if (late > q->late_max_ns) q->late_max_ns = late;
            if (late > 100000) q->late_over_100us++;
            if (late > 1000000) q->late_over_1ms++;
            if (late > 4000000) q->late_over_4ms++;
        } else {
            q->dropped++;
        }
        q->head = (q->head + 1) % SLOTS;
        q->count--;
    }
}

static void read_all(struct direction *q)
{
    for (int k = 0; k < READ_BATCH; k++) {
        unsigned i = (q->head + q->count) % SLOTS;
        unsigned char scratch[SLOT_BYTES];
        unsigned char *dst = q->count < SLOTS ? q->buf + (size_t)i * SLOT_BYTES : scratch;
        ssize_t n = read(q->in_fd, dst, SLOT_BYTES);
        if (n <= 0) return;  /* EAGAIN: nothing more now */
        q->in++;
        q->bytes += (uint64_t)n;
        if ((uint64_t)n > q->max_len) q->max_len = (uint64_t)n;
        if (q->count == SLOTS) { q->dropped++; continue; }
        q->len[i] = (uint16_t)n;
        q->due[i] = now_ns() + q->delay_ns;
        q->count++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: delayline MAX_SECONDS NS_A,DEV_A,NS_B,DEV_B,DELAY_US ...\n");
        return 2;
    }
    double max_s = atof(argv[1]);
    if (!(max_s > 0 && max_s <= 3600) || argc - 2 > MAX_LINKS) {
        fprintf(stderr, "delayline: MAX_SECONDS must be in (0, 3600], at most %d links\n",
                MAX_LINKS);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    for (int l = 0; l < argc - 2; l++) {
        char spec[512], *f[5];
        strncpy(spec, argv[l + 2], sizeof spec - 1);
        spec[sizeof spec - 1] = 0;
        char *save = NULL, *tok = strtok_r(spec, ",", &save);
        int nf = 0;
        while (tok && nf < 5) { f[nf++] = tok; tok = strtok_r(NULL, ",", &save); }
        if (nf != 5) {
            fprintf(stderr, "delayline: bad link %s\n", argv[l + 2]);
            return 2;
        }
        int a = open_tun_in(f[0], f[1], home), b = open_tun_in(f[2], f[3], home);
        if (a < 0 || b < 0) return 1;
        int64_t delay_ns = (int64_t)(atof(f[4]) * 1000.0);
        struct direction *ab = &dirs[ndirs++], *ba = &dirs[ndirs++];
        ab->in_fd = a; ab->out_fd = b; ab->delay_ns = delay_ns;
        ba->in_fd = b; ba->out_fd = a; ba->delay_ns = delay_ns;
    }
    for (int d = 0; d < ndirs; d++) {
        dirs[d].buf = malloc((size_t)SLOTS * SLOT_BYTES);
        if (!dirs[d].buf) { fprintf(stderr, "delayline: out of memory\n"); return 1; }
        memset(dirs[d].buf, 0, (size_t)SLOTS * SLOT_BYTES);  /* fault the pages in now */
    }
    mlockall(MCL_CURRENT);  /* best effort: no page faults while timing */
    printf("ready\n");
    fflush(stdout);

    struct pollfd fds[2 * MAX_LINKS + 1];
    int64_t deadline = now_ns() + (int64_t)(max_s * 1e9);
    char cmd[256];
    size_t cmd_len = 0;
    while (!stop) {
        int64_t now = now_ns();
        if (now >= deadline) break;
        int64_t next = now + MAX_WAIT_NS;
        for (int d = 0; d < ndirs; d++) {
            release_due(&dirs[d], now);
            if (dirs[d].count && dirs[d].due[dirs[d].head] < next)
                next = dirs[d].due[dirs[d].head];
        }
        for (int d = 0; d < ndirs; d++) {
            fds[d].fd = dirs[d].in_fd;
            fds[d].events = POLLIN;
            fds[d].revents = 0;
        }
        fds[ndirs].fd = 0;
        fds[ndirs].events = POLLIN;
        fds[ndirs].revents = 0;
        int64_t wait = next - now_ns();
        if (wait < 0) wait = 0;
        struct timespec ts = {wait / 1000000000LL, wait % 1000000000LL};
        int ready = ppoll(fds, ndirs + 1, &ts, NULL);
        if (ready < 0 && errno != EINTR) break;
        if (ready <= 0) continue;
        for (int d = 0; d < ndirs; d++)
            if (fds[d].revents & POLLIN) read_all(&dirs[d]);
        if (fds[ndirs].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(0, cmd + cmd_len, sizeof cmd - 1 - cmd_len);
            if (n <= 0) break;  /* the parent is gone */
            cmd_len += (size_t)n;
            cmd[cmd_len] = 0;
            char *nl;
            while ((nl = strchr(cmd, '\n'))) {
                *nl = 0;
                if (!strcmp(cmd, "stats")) print_stats();
                else if (!strcmp(cmd, "quit")) stop = 1;
                size_t rest = cmd_len - (size_t)(nl + 1 - cmd);
                memmove(cmd, nl + 1, rest + 1);
                cmd_len = rest;
            }
            if (cmd_len >= sizeof cmd - 1) cmd_len = 0;  /* an over-long line: drop it */
        }
    }
    print_stats();
    return 0;
}
