/* PLACEHOLDER: replaced by the owner of `cnflow generate` (work in progress). */
#include "cli.h"
int cmd_generate(int argc, char **argv) {
  return cnf_error_set(CNF_ERR_STATE, "'cnflow generate' is not built yet");
}
