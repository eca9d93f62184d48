/* init.c — library version and one-time process setup (fisherflow.h). */
#include <gsl/gsl_errno.h>
#include "fisherflow/fisherflow.h"
#include "fisherflow/version.h"

const char *ff_version(void) { return FF_VERSION_STRING; }

void ff_init(void) {
    /* GSL's default handler aborts; we map every GSL return code to FF_ENUMERIC instead. */
    gsl_set_error_handler_off();
}

__attribute__((constructor)) static void ff_init_on_load(void) { ff_init(); }
