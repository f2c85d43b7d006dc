// Compile-time probe (not built by meson): see the README, "Consuming gpummu".
#include <algorithm>
#include <map>
#include <vector>
int use(std::vector<int> &v, std::map<int, int> &m)
{
    std::sort(v.begin(), v.end());
    m[v.empty() ? 0 : v[0]] = 1;
    return static_cast<int>(m.size());
}
