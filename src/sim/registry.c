/* Generator registry: the names `cnflow generate <name>` accepts. */
#include "cnflow/sim.h"

#include <string.h>

const cnf_generator *cnf_generator_find(const char *name) {
  static const cnf_generator *const all[] = {&cnf_gen_hgg, &cnf_gen_calo_photon, &cnf_gen_calo_pion};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (strcmp(all[i]->name, name) == 0)
      return all[i];
  return NULL;
}
