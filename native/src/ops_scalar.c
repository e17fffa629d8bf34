/* The baseline kernels: portable C, vectorized only as far as the target's baseline allows. */
#include "ops_portable.h"

const cairn_ops_table cairn_ops_scalar = CAIRN_PORTABLE_OPS_TABLE;
