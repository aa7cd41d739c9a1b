/* loadsrv: the load test's server inside a container. Answers every
 * connection with one fixed HTTP response (64 KiB of 'x' ending in "END"),
 * a thread per connection and a listen backlog of 4096, so that 500
 * simultaneous connections measure Berth's forwarding, not the server
 * (busybox httpd listens with a backlog of 9). */
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY 65536
static char resp[BODY + 256];
static size_t resp_len;

static void *serve(void *arg) {
    int fd = (int)(long)arg;
    char buf[4096];
    ssize_t n;
    /* read the request head (or until the client stops sending) */
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (memmem(buf, (size_t)n, "\r\n\r\n", 4)) break;
    size_t off = 0;
    while (off < resp_len) {
        n = write(fd, resp + off, resp_len - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
    close(fd);
    return NULL;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    int head = snprintf(resp, sizeof resp,
                        "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n", BODY + 3);
    memset(resp + head, 'x', BODY);
    memcpy(resp + head + BODY, "END", 3);
    resp_len = (size_t)head + BODY + 3;
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4096)) {
        perror("loadsrv");
        return 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        pthread_t t;
        if (pthread_create(&t, &attr, serve, (void *)(long)c)) close(c);
    }
}
