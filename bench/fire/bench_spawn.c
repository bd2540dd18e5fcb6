/* bench_spawn.c — the machine's limit for command jobs: a bare
 * posix_spawn + waitpid loop of /bin/true, one child at a time, for a few
 * seconds.  bench/fire/run.sh sets Aster's command-job rate beside it.
 *
 * usage: bench_spawn [SECONDS (default 3)] [PATH (default /bin/true)]
 * prints: spawn: <N>/s  (<count> spawns in <secs> s, <path>)
 *
 * System headers only: CMake builds every bench/<name>/bench_*.c, and this
 * one measures the OS, not Aster. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 3.0;
    const char *path = argc > 2 ? argv[2] : "/bin/true";
    if (budget <= 0 || budget > 600) {
        fprintf(stderr, "usage: bench_spawn [SECONDS 0..600] [PATH]\n");
        return 2;
    }
    char *args[] = {(char *)path, NULL};
    long n = 0;
    double t0 = now_s(), t = t0;
    while (t - t0 < budget) {
        pid_t pid;
        int rc = posix_spawn(&pid, path, NULL, NULL, args, environ);
        if (rc != 0) {
            fprintf(stderr, "posix_spawn %s: %s\n", path, strerror(rc));
            return 1;
        }
        int st;
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) {
                perror("waitpid");
                return 1;
            }
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "%s did not exit 0\n", path);
            return 1;
        }
        n++;
        t = now_s();
    }
    double secs = t - t0;
    printf("spawn: %.0f/s  (%ld spawns in %.2f s, %s)\n", (double)n / secs, n, secs, path);
    return 0;
}
