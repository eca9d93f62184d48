/* fisherflow.h — the whole public C API of libfisherflow. */
#ifndef FISHERFLOW_H
#define FISHERFLOW_H

#include "error.h"
#include "tensor.h"
#include "rng.h"
#include "tape.h"
#include "ops.h"
#include "params.h"
#include "optim.h"
#include "options.h"
#include "space.h"
#include "plugin.h"
#include "io.h"
#include "data.h"
#include "metrics.h"
#include "checkpoint.h"
#include "sphere.h"
#include "geometry.h"
#include "ode.h"
#include "likelihood.h"
#include "flow.h"
#include "threads.h"
#include "dist.h"
#include "interrupt.h"

const char *ff_version(void);   /* "0.1.0": the library's version (the Lua layer checks it) */
/* Idempotent process setup: turns GSL's abort-on-error handler off (errors become statuses). */
void        ff_init(void);

#endif
