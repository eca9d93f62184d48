/* interrupt.c — SIGINT/SIGTERM recorded for a clean stop at the end of a step (interrupt.h). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "fisherflow/interrupt.h"

static volatile sig_atomic_t pending;
static int depth;
static struct sigaction old_int, old_term;

static void on_signal(int sig) {
    if (pending) {                              /* the second one: the default action, now */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    pending = sig;
    static const char msg[] = "\nfisherflow: stopping at the end of this step (press Ctrl-C again to quit at once)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
}

ff_status ff_interrupt_watch(int on) {
    if (on) {
        if (depth++ > 0) return FF_OK;
        pending = 0;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGINT, &sa, &old_int) != 0 || sigaction(SIGTERM, &sa, &old_term) != 0) {
            depth--;
            return ff_errorf(FF_EIO, "ff_interrupt_watch: sigaction failed");
        }
        return FF_OK;
    }
    if (depth == 0 || --depth > 0) return FF_OK;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    pending = 0;
    return FF_OK;
}

int ff_interrupt_pending(void) { return (int)pending; }
