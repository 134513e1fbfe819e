// libstdc++ containers, iterators and smart pointers, and C++ enumerators, in one
// frame, for comparison with gdb's libstdc++ pretty printers (tests/variables_gdb.rs).
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>
#include <utility>

struct P {
    int a;
    char b;
};
int *volatile bad = nullptr;
volatile int armed = 0;
// Keeps its argument alive; faults once armed (in refs(), every local of main set).
[[gnu::noinline]] void use(void *) {
    if (armed) *bad = 1;
}

struct Empty {};
namespace ns {
enum E { A, B };
enum class C { X, Y };
struct S {
    enum In { P, Q };
};
}  // namespace ns
enum G { G0, G1 };
struct R {
    int &n;
    std::string &s;
    P &p;
};
[[gnu::noinline]] void refs(const std::string &s, const int &n, std::map<int, long> &m, P &p, R r) {
    use(&r), use((void *)&s), use((void *)&n), use(&m), use(&p);
}
struct OnlyBase : Empty {};


int main() {
    std::map<int, long> m{{1, 10}, {2, 20}, {3, 30}};
    std::map<std::string, P> ms{{"one", {1, 'x'}}, {"two", {2, 'y'}}};
    std::map<char, double> mixed{{'a', 1.5}, {'b', -2.25}};
    std::set<int> s{5, 3, 9};
    std::multiset<int> mm{1, 1, 2};
    std::unordered_map<int, int> um{{1, 2}, {3, 4}};
    std::unordered_set<std::string> us{"a", "b"};
    std::list<int> l{7, 8, 9};
    std::list<std::string> empty_list;
    std::unique_ptr<int> up(new int(5));
    std::unique_ptr<P> upn;
    std::shared_ptr<int> sp = std::make_shared<int>(6);
    std::shared_ptr<int> sp2 = sp;
    std::weak_ptr<int> wp = sp;
    std::shared_ptr<P> spn;
    std::optional<int> o1 = 4, o2;
    std::map<int, long> empty;
    std::deque<long> dq;
    for (long i = 0; i < 150; i++) dq.push_back(i * 3);
    dq.pop_front();
    std::deque<std::string> ds{"x", "yy"};
    std::tuple<int, std::string, double> t{1, "two", 3.5};
    std::pair<int, char> pr{1, 'c'};
    std::vector<int> v{7, 8};
    std::vector<int>::iterator it = v.begin() + 1;
    ns::E e1 = ns::B;
    ns::C c1 = ns::C::Y;
    ns::S::In in = ns::S::Q;
    G g = G1;
    use(&v), use(&it), use(&e1), use(&c1), use(&in), use(&g);
    Empty e;
    OnlyBase ob;
    std::string str = "str";
    std::variant<int, std::string, double> va = std::string("hello"), vb = 2.5, vc = 7;
    std::variant<P, std::vector<int>, std::map<int, long>> vp = P{3, 'q'}, vv = std::vector<int>{1, 2}, vm;
    vm = std::map<int, long>{{4, 40}};
    std::variant<std::monostate, long, std::list<std::string>> vmono, vlong = 9L;
    std::optional<std::string> ostr = "in";
    std::unique_ptr<std::vector<int>> uvec;
    use(&va), use(&vb), use(&vc), use(&vp), use(&vv), use(&vm), use(&vmono), use(&vlong), use(&ostr), use(&uvec);
    int n = 42;
    P pp{3, 'z'};
    use(&dq), use(&ds), use(&t), use(&pr), use(&e), use(&ob);
    use(&m), use(&ms), use(&mixed), use(&s), use(&mm), use(&um), use(&us), use(&l), use(&empty_list);
    use(&up), use(&upn), use(&sp), use(&sp2), use(&wp), use(&spn), use(&o1), use(&o2), use(&empty);
    armed = 1;
    refs(str, n, m, pp, R{n, str, pp});
}
