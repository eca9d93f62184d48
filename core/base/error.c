/* error.c — the thread-local error message behind ff_errorf / ff_last_error (error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "fisherflow/error.h"

#define FF_ERROR_SIZE 2048
static _Thread_local char message[FF_ERROR_SIZE];

ff_status ff_errorf(ff_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return code;
}

ff_status ff_error_wrap(ff_status code, const char *fmt, ...) {
    char prefix[FF_ERROR_SIZE], old[FF_ERROR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, message, sizeof old);
    size_t n = strlen(prefix);
    if (n > FF_ERROR_SIZE - 3) n = FF_ERROR_SIZE - 3;
    memcpy(message, prefix, n);
    memcpy(message + n, ": ", 2);
    size_t room = FF_ERROR_SIZE - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(message + n + 2, old, m);
    message[n + 2 + m] = '\0';
    return code;
}

const char *ff_last_error(void) { return message; }
void ff_clear_error(void) { message[0] = '\0'; }

const char *ff_status_name(ff_status s) {
    static const char *names[] = { "FF_OK", "FF_EINVAL", "FF_ESHAPE", "FF_ENOMEM", "FF_EIO",
                                   "FF_EABI", "FF_EPLUGIN", "FF_ENUMERIC" };
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "FF_E?";
}
