/* PLACEHOLDER: replaced by the owner of generator calo-photon (work in progress). */
#include "cnflow/sim.h"
const cnf_generator cnf_gen_calo_photon = {.name = "calo-photon", .help = "not built yet"};
