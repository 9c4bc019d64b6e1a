/* PLACEHOLDER: replaced by the owner of `cnflow bench` (work in progress). */
#include "cli.h"
int cmd_bench(int argc, char **argv) {
  return cnf_error_set(CNF_ERR_STATE, "'cnflow bench' is not built yet");
}
