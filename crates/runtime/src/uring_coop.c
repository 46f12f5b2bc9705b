/*
 * Shoal: ask the kernel for cooperative io_uring task running.
 *
 * glommio creates its io_uring rings without IORING_SETUP_COOP_TASKRUN, so every socket poll
 * that completes while the core is busy interrupts it with an inter-processor interrupt to run
 * the completion (measured: about 20% of the CPU at pipeline 1, and half the throughput; see
 * bench/RESULTS.md). glommio offers no way to pass setup flags, and it creates its rings through
 * liburing's __sys_io_uring_setup, which calls libc's syscall(). This file defines syscall()
 * in the executable: it adds COOP_TASKRUN | TASKRUN_FLAG to every io_uring_setup (retrying
 * without them on a kernel that refuses them, before 5.19) and performs every other system
 * call unchanged, exactly as glibc's syscall() does (raw instruction, errno on failure).
 * SHOAL_IO_URING_COOP=0 in the environment turns the flag adding off.
 *
 * This is a workaround until Shoal drives its sockets through its own ring (issue 2).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#define SHOAL_IORING_SETUP_COOP_TASKRUN (1U << 8)
#define SHOAL_IORING_SETUP_TASKRUN_FLAG (1U << 9)

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static long raw_syscall6(long n, long a, long b, long c, long d, long e, long f) {
    long ret;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    ret = x0;
#else
#error "uring_coop.c supports x86_64 and aarch64"
#endif
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

/* 0: not decided yet, 1: add the flags, 2: do not. Racy first use is harmless: every thread
 * computes the same answer. */
static int coop_mode;

static int coop_wanted(void) {
    if (coop_mode == 0) {
        const char *env = getenv("SHOAL_IO_URING_COOP");
        coop_mode = (env != NULL && strcmp(env, "0") == 0) ? 2 : 1;
    }
    return coop_mode == 1;
}

/* The io_uring_params struct begins with sq_entries, cq_entries, flags (three u32). */
struct shoal_io_uring_params_head {
    unsigned sq_entries;
    unsigned cq_entries;
    unsigned flags;
};

long syscall(long number, ...) {
    va_list ap;
    va_start(ap, number);
    long a = va_arg(ap, long);
    long b = va_arg(ap, long);
    long c = va_arg(ap, long);
    long d = va_arg(ap, long);
    long e = va_arg(ap, long);
    long f = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_io_uring_setup && b != 0 && coop_wanted()) {
        struct shoal_io_uring_params_head *params = (struct shoal_io_uring_params_head *)b;
        unsigned original = params->flags;
        params->flags = original | SHOAL_IORING_SETUP_COOP_TASKRUN | SHOAL_IORING_SETUP_TASKRUN_FLAG;
        long fd = raw_syscall6(number, a, b, c, d, e, f);
        if (fd >= 0 || errno != EINVAL) {
            return fd;
        }
        params->flags = original;
    }
    return raw_syscall6(number, a, b, c, d, e, f);
}

/* Referenced from Rust so that the linker keeps this object, and with it syscall(). */
int shoal_uring_coop_linked(void) {
    return 1;
}
