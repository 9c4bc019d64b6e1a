/* PLACEHOLDER: replaced by the owner of generator calo-pion (work in progress). */
#include "cnflow/sim.h"
const cnf_generator cnf_gen_calo_pion = {.name = "calo-pion", .help = "not built yet"};
