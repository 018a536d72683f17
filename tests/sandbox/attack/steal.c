/* steal: take every descriptor this step can reach and write forged control messages
 * into it.
 *
 * Usage: steal PAYLOAD HOST_PIDNS_INODE
 *
 * For every process visible in /proc (pid 1 first), pidfd_open(2) it and try
 * pidfd_getfd(2) on descriptors 0..1023; add this process's own inherited descriptors
 * above 2. PAYLOAD holds framed messages (1 kind byte, 4-byte big-endian length, body):
 * each message goes to every descriptor in one non-blocking write, with a short pause
 * between messages so that a reader sees them one at a time. Then every descriptor is
 * shut down and closed. Regular files and directories are counted but never written.
 *
 * As a safety net it does nothing (exit 3) when it runs in the PID namespace whose
 * inode is HOST_PIDNS_INODE (the test's own): it must only ever see a step's processes.
 *
 * Prints one line: stolen=N own=N files=N written=N
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SYS_PIDFD_OPEN 434
#define SYS_PIDFD_GETFD 438
#define MAX_TARGET_FD 1024
#define MAX_TAKEN 8192
#define MAX_PAYLOAD (1 << 20)

static int taken[MAX_TAKEN];
static int n_taken, n_stolen, n_own, n_files;

static void keep(int fd, int stolen) {
    struct stat st;
    if (n_taken == MAX_TAKEN) {
        close(fd);
        return;
    }
    if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
        n_files++;
        close(fd);
        return;
    }
    taken[n_taken++] = fd;
    if (stolen)
        n_stolen++;
    else
        n_own++;
}

static void steal_from(pid_t pid) {
    int pidfd = syscall(SYS_PIDFD_OPEN, pid, 0);
    if (pidfd < 0)
        return;
    for (int target = 0; target < MAX_TARGET_FD; target++) {
        int fd = syscall(SYS_PIDFD_GETFD, pidfd, target, 0);
        if (fd >= 0)
            keep(fd, 1);
    }
    close(pidfd);
}

static char *read_payload(const char *path, size_t *size) {
    char *data = malloc(MAX_PAYLOAD);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    *size = 0;
    if (data == NULL || fd < 0) {
        perror(path);
        exit(2);
    }
    while (*size < MAX_PAYLOAD && (n = read(fd, data + *size, MAX_PAYLOAD - *size)) > 0)
        *size += n;
    close(fd);
    return data;
}

/* One write that never blocks and never raises SIGPIPE; 1 when all of it went out. */
static int write_once(int fd, const char *data, size_t size) {
    ssize_t n = send(fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0)
            return 0;
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        n = write(fd, data, size);
        fcntl(fd, F_SETFL, flags);
    }
    return n == (ssize_t)size;
}

int main(int argc, char **argv) {
    struct stat ns;
    size_t size, at = 0;
    int written = 0;
    char *payload;
    DIR *proc;
    struct dirent *entry;

    if (argc != 3) {
        fprintf(stderr, "usage: %s PAYLOAD HOST_PIDNS_INODE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* our own descriptors first, before this program opens any */
    for (int fd = 3; fd < MAX_TARGET_FD; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            keep(fd, 0);
    if (stat("/proc/self/ns/pid", &ns) == 0 &&
        (unsigned long long)ns.st_ino == strtoull(argv[2], NULL, 10)) {
        printf("refused: this is the host's PID namespace\n");
        return 3;
    }
    payload = read_payload(argv[1], &size);

    steal_from(1);
    proc = opendir("/proc");
    while (proc != NULL && (entry = readdir(proc)) != NULL) {
        pid_t pid;
        if (!isdigit((unsigned char)entry->d_name[0]))
            continue;
        pid = (pid_t)atoi(entry->d_name);
        if (pid != 1 && pid != getpid())
            steal_from(pid);
    }
    if (proc != NULL)
        closedir(proc);

    while (at < size) {
        size_t len = size - at;
        if (len >= 5) {
            size_t body = ((size_t)(unsigned char)payload[at + 1] << 24) |
                          ((size_t)(unsigned char)payload[at + 2] << 16) |
                          ((size_t)(unsigned char)payload[at + 3] << 8) |
                          (size_t)(unsigned char)payload[at + 4];
            if (body <= len - 5)
                len = 5 + body;
        }
        for (int i = 0; i < n_taken; i++)
            written += write_once(taken[i], payload + at, len);
        at += len;
        nanosleep(&(struct timespec){0, 40 * 1000 * 1000}, NULL);
    }
    for (int i = 0; i < n_taken; i++) {
        shutdown(taken[i], SHUT_RDWR);
        close(taken[i]);
    }
    printf("stolen=%d own=%d files=%d written=%d\n", n_stolen, n_own, n_files, written);
    return 0;
}
