/* flow_internal.h (private) — shared by flow.c and flow_config.c. Not installed; hidden from the
 * library's exports. */
#ifndef FF_FLOW_INTERNAL_H
#define FF_FLOW_INTERNAL_H

#include "fisherflow/flow.h"

/* Fills what a config leaves to defaults, as ff_flow_new reads it: geometry "sphere", the kinds'
 * default plugin names, AdamW (weight decay 0) for optim.kind 0, lr.base = optim.lr when <= 0. So
 * the JSON of a config and the JSON of the flow built from it are the same text. */
__attribute__((visibility("hidden"))) void ff_flow_config_resolve(ff_flow_config *c);

#endif
