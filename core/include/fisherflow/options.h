/* options.h — small typed key/value tables that carry options to plugins (from Lua tables or C).
 *
 * A plugin declares its options in its descriptor (ff_option_spec: name, type, default, help). The
 * loader validates a table against the spec before create(): an unknown key or a value of the wrong
 * type is refused with a message naming the option and the plugin. Getters return the value set, or
 * the spec's default when the table was validated against a spec and the key is absent.
 */
#ifndef FISHERFLOW_OPTIONS_H
#define FISHERFLOW_OPTIONS_H

#include <stdint.h>
#include "error.h"

typedef enum ff_option_type {
    FF_OPT_INT = 1,    /* int64                                   */
    FF_OPT_NUMBER,     /* double (an int value is accepted)       */
    FF_OPT_STRING,
    FF_OPT_BOOL,
    FF_OPT_NUMBERS,    /* array of doubles (a single number is accepted as length 1) */
} ff_option_type;

typedef struct ff_option_spec {
    const char     *name;           /* NULL ends the list                                */
    ff_option_type  type;
    const char     *default_value;  /* as text: "256", "0.01", "true", "1,1,4", or NULL  */
    const char     *help;
} ff_option_spec;

typedef struct ff_options ff_options;

ff_status ff_options_new       (ff_options **out);
void      ff_options_free      (ff_options *o);                      /* NULL-safe */
ff_status ff_options_copy      (ff_options **out, const ff_options *src);   /* src may be NULL */
ff_status ff_options_set_int   (ff_options *o, const char *key, int64_t v);
ff_status ff_options_set_number(ff_options *o, const char *key, double v);
ff_status ff_options_set_string(ff_options *o, const char *key, const char *v);
ff_status ff_options_set_bool  (ff_options *o, const char *key, int v);
ff_status ff_options_set_numbers(ff_options *o, const char *key, const double *v, int n);

/* Checks every key against spec; `owner` names the plugin in messages ("network \"bmlp\"").
 * Errors: unknown option "hiden" (known: hidden, depth, ...); option "depth" expects int, got string.
 * On success the table remembers spec (for defaults) and owner. */
ff_status ff_options_validate  (ff_options *o, const ff_option_spec *spec, const char *owner);

/* Checks a plugin's own spec: names valid ([a-z0-9_]+) and unique, types known, defaults parse as
 * their type. FF_EPLUGIN naming `owner` and the option otherwise (the loader refuses such a plugin). */
ff_status ff_option_spec_check (const ff_option_spec *spec, const char *owner);

/* Getters: FF_EINVAL naming the key if it is absent and has no default, or has another type. */
ff_status ff_options_get_int   (const ff_options *o, const char *key, int64_t *v);
ff_status ff_options_get_number(const ff_options *o, const char *key, double *v);
ff_status ff_options_get_string(const ff_options *o, const char *key, const char **v);  /* borrowed */
ff_status ff_options_get_bool  (const ff_options *o, const char *key, int *v);
/* Array getter: *v borrowed (valid while o lives), *n its length. */
ff_status ff_options_get_numbers(const ff_options *o, const char *key, const double **v, int *n);
int       ff_options_has       (const ff_options *o, const char *key);   /* set explicitly */
/* JSON object text of the set values, for metadata ({"hidden":256,"depth":4}); caller frees. */
char     *ff_options_to_json   (const ff_options *o);

#endif
