/* Generator registry: the names `cnflow generate <name>` accepts. */
#include "cnflow/sim.h"

#include <string.h>

static const cnf_generator *const all_generators[] = {&cnf_gen_hgg, &cnf_gen_calo_photon,
                                                      &cnf_gen_calo_pion};
static const int n_generators = (int)(sizeof all_generators / sizeof all_generators[0]);

const cnf_generator *cnf_generator_at(int i) {
  return i >= 0 && i < n_generators ? all_generators[i] : NULL;
}

const cnf_generator *cnf_generator_find(const char *name) {
  for (int i = 0; i < n_generators; i++)
    if (strcmp(all_generators[i]->name, name) == 0)
      return all_generators[i];
  return NULL;
}
