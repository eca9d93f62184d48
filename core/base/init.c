/* init.c — library version and one-time process setup (fisherflow.h). */
#include <pthread.h>
#include <gsl/gsl_errno.h>
#include "fisherflow/fisherflow.h"
#include "fisherflow/version.h"

const char *ff_version(void) { return FF_VERSION_STRING; }

/* GSL's default handler aborts; we map every GSL return code to FF_ENUMERIC instead. */
static void init_once(void) { gsl_set_error_handler_off(); }

void ff_init(void) {
    /* once per process: ff_ode_integrate calls this from the sampler's threads at once, and GSL's
     * handler is a plain global */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);
}

__attribute__((constructor)) static void ff_init_on_load(void) { ff_init(); }
