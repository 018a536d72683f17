/* keys: try the kernel keyring, which a step must not reach (Docker's default seccomp
 * profile refuses add_key, keyctl and request_key).
 *
 * Prints: add_key=RC errno=NAME  and  keyctl_join=RC errno=NAME
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEY_SPEC_PROCESS_KEYRING -2
#define KEYCTL_JOIN_SESSION_KEYRING 1

static const char *name(long rc, int err) {
    const char *n;
    if (rc >= 0)
        return "0";
    n = strerrorname_np(err);
    return n ? n : "unknown";
}

int main(void) {
    long rc;
    errno = 0;
    rc = syscall(SYS_add_key, "user", "ocibuild-test", "x", 1, KEY_SPEC_PROCESS_KEYRING);
    printf("add_key=%ld errno=%s\n", rc < 0 ? -1L : rc, name(rc, errno));
    errno = 0;
    rc = syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL);
    printf("keyctl_join=%ld errno=%s\n", rc < 0 ? -1L : rc, name(rc, errno));
    return 0;
}
