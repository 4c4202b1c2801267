/* mulch.h — umbrella header: the pool, the collector and reference-counted
 * objects (with the bridge). Version macros live in <mulch/common.h>. */
#ifndef MULCH_H
#define MULCH_H

#include <mulch/common.h>
#include <mulch/pool.h>
#include <mulch/gc.h>
#include <mulch/rc.h>

#endif /* MULCH_H */
