/* peek: what a step can learn about, and do to, its namespace's init (pid 1).
 *
 * Prints, one per line:
 *   ptrace_seize=RC errno=NAME          PTRACE_SEIZE of pid 1 (detached again if it worked)
 *   ptrace_attach=RC errno=NAME         PTRACE_ATTACH of pid 1 (likewise)
 *   parent=PPID                         pid 1's parent as this namespace sees it
 *   parent_ptrace_attach=RC errno=NAME  only when that parent is visible (not 0)
 *   exe=TARGET  or  exe_error=NAME      readlink("/proc/1/exe")
 * then, for each of /proc/1/cmdline, /proc/1/environ, /proc/1/mountinfo,
 * /proc/self/mountinfo and /proc/1/status, a header line "@@ PATH ok" or
 * "@@ PATH error=NAME" followed by the file's raw bytes and a newline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *name(int err) {
    const char *n = strerrorname_np(err);
    return n ? n : "unknown";
}

/* Wait (at most about half a second) for a traced pid to stop, then let it go. */
static void release(pid_t pid) {
    int status;
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, &status, WNOHANG | __WALL) == pid)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
}

static void try_attach(const char *label, pid_t pid) {
    errno = 0;
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    printf("%s=%ld errno=%s\n", label, rc, rc == 0 ? "0" : name(errno));
    fflush(stdout);
    if (rc == 0)
        release(pid);
}

static void try_seize(pid_t pid) {
    errno = 0;
    long rc = ptrace(PTRACE_SEIZE, pid, NULL, NULL);
    printf("ptrace_seize=%ld errno=%s\n", rc, rc == 0 ? "0" : name(errno));
    fflush(stdout);
    if (rc == 0) {
        ptrace(PTRACE_INTERRUPT, pid, NULL, NULL);
        release(pid);
    }
}

static char *slurp(const char *path, size_t *size, int *err) {
    size_t cap = 1 << 16;
    char *data = malloc(cap);
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *size = 0;
    *err = 0;
    if (fd < 0) {
        *err = errno;
        return data;
    }
    for (;;) {
        if (*size == cap) {
            cap *= 2;
            data = realloc(data, cap);
        }
        n = read(fd, data + *size, cap - *size);
        if (n < 0) {
            *err = errno;
            break;
        }
        if (n == 0)
            break;
        *size += n;
    }
    close(fd);
    return data;
}

static pid_t parent_of_init(void) {
    size_t size;
    int err;
    char *status = slurp("/proc/1/status", &size, &err);
    pid_t ppid = 0;
    if (!err) {
        status[size < (1 << 16) ? size : size - 1] = '\0';
        char *line = strstr(status, "\nPPid:");
        if (line)
            ppid = (pid_t)atoi(line + 6);
    }
    free(status);
    return ppid;
}

static void dump(const char *path) {
    size_t size;
    int err;
    char *data = slurp(path, &size, &err);
    if (err && size == 0)
        printf("@@ %s error=%s\n", path, name(err));
    else
        printf("@@ %s ok\n", path);
    fwrite(data, 1, size, stdout);
    putchar('\n');
    free(data);
}

int main(void) {
    char exe[4096];
    ssize_t n;
    pid_t ppid;

    try_seize(1);
    try_attach("ptrace_attach", 1);
    ppid = parent_of_init();
    printf("parent=%d\n", (int)ppid);
    if (ppid > 0)
        try_attach("parent_ptrace_attach", ppid);
    n = readlink("/proc/1/exe", exe, sizeof exe - 1);
    if (n < 0) {
        printf("exe_error=%s\n", name(errno));
    } else {
        exe[n] = '\0';
        printf("exe=%s\n", exe);
    }
    dump("/proc/1/cmdline");
    dump("/proc/1/environ");
    dump("/proc/1/mountinfo");
    dump("/proc/self/mountinfo");
    dump("/proc/1/status");
    return 0;
}
