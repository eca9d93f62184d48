/* interrupt.h — a clean stop on Ctrl-C (SIGINT) or SIGTERM for long loops (flow:fit).
 *
 * ff_interrupt_watch(1) installs handlers for SIGINT and SIGTERM that only record the signal: the
 * loop polls ff_interrupt_pending() once per step, stops at the end of that step, saves and says
 * how to resume. A second SIGINT or SIGTERM while one is pending restores the default action and
 * re-raises it: the process ends at once (a user who presses Ctrl-C twice wants out now).
 * ff_interrupt_watch(0) restores the handlers that were there before and clears the pending signal.
 * The handler writes one line to stderr (async-signal-safe write(2)). Process-wide: one watcher at
 * a time (a nested watch(1) is counted and only the outermost watch(0) restores).
 */
#ifndef FISHERFLOW_INTERRUPT_H
#define FISHERFLOW_INTERRUPT_H

#include "error.h"

ff_status ff_interrupt_watch(int on);
int       ff_interrupt_pending(void);   /* the signal number received (SIGINT, SIGTERM) or 0 */

#endif
