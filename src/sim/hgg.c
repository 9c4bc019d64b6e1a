/* PLACEHOLDER: replaced by the owner of generator hgg (work in progress). */
#include "cnflow/sim.h"
const cnf_generator cnf_gen_hgg = {.name = "hgg", .help = "not built yet"};
