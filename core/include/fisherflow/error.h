/* error.h — status codes and the thread-local error message.
 *
 * Every fallible function returns ff_status (FF_OK = 0). On failure it has already written a
 * human-readable message, naming the function and the offending values, into a thread-local
 * buffer that ff_last_error() returns. Nothing in libfisherflow or a plugin aborts or exits on
 * bad input. The Lua layer turns status + message into a Lua error.
 */
#ifndef FISHERFLOW_ERROR_H
#define FISHERFLOW_ERROR_H

typedef enum ff_status {
    FF_OK = 0,
    FF_EINVAL,     /* bad argument value            */
    FF_ESHAPE,     /* shapes do not fit             */
    FF_ENOMEM,     /* allocation failed             */
    FF_EIO,        /* file missing, short read, malformed file */
    FF_EABI,       /* plugin built for another ABI  */
    FF_EPLUGIN,    /* plugin refused or misbehaved  */
    FF_ENUMERIC,   /* NaN/Inf, solver did not converge, GSL error */
} ff_status;

/* Sets this thread's message (printf-style) and returns code, so `return ff_errorf(...)` reads
 * as one line. */
ff_status   ff_errorf(ff_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with "<prefix>: " and returns code (adds context on the way up). */
ff_status   ff_error_wrap(ff_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ff_last_error(void);          /* message of this thread's latest failure ("" if none) */
void        ff_clear_error(void);
const char *ff_status_name(ff_status s);  /* "FF_ESHAPE" */

#define FF_TRY(expr) do { ff_status s_ = (expr); if (s_ != FF_OK) return s_; } while (0)

#endif
