// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
#include <gpummu/gpummu.hpp>
int main()
{
    return 0;
}
