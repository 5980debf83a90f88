/* hello: proves the boot path works; prints which entry was used and what the loader handed over.
 */
#include "testguest.h"

int test_main(void) {
  printf("TESTGUEST hello boot=%s\n", boot_path_name());
  boot_info_print();
  printf("cpu: cr0=0x%lx cr3=0x%lx cr4=0x%lx\n", read_cr0(), read_cr3(), read_cr4());
  return 0;
}
