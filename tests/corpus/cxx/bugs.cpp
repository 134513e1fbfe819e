// Corpus program (C++): five distinct bugs, each reachable through six paths.
// usage: bugs BUG PATH [DEPTH]
// BUG:  cfg_throw vec_at lambda_null matrix_get decode_packet
// PATH: direct caller_a caller_b loop thread recurse
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

volatile int g_count = 0;
int g_sink;

// Bug 1: a missing config file throws, and nobody catches it.
struct Config {
    std::map<std::string, std::string> values;
    void load(const std::string &path) {
        if (g_count == 0) throw std::runtime_error("cannot open " + path);
        values["path"] = path;
    }
};

// Bug 2: lookup of an id past the end (std::vector::at throws out_of_range).
class Inventory {
  public:
    Inventory() : items_(3, 1) {}
    int lookup(int id) const { return items_.at(static_cast<size_t>(id)); }
  private:
    std::vector<int> items_;
};

// Bug 3: a handler lambda writes through a slot that was never allocated.
int *volatile g_slot = nullptr;
class Server {
  public:
    std::function<void(int)> install_handler() {
        return [this](int fd) {
            int *slot = g_slot;
            *slot = fd + port_;
        };
    }
  private:
    int port_ = 8080;
};

// Bug 4: a matrix with no storage, read through two instantiations.
template <typename T> class Matrix {
  public:
    explicit Matrix(size_t n) : n_(n), data_(nullptr) {}
    T get(size_t r, size_t c) const { return data_[r * n_ + c]; }
  private:
    size_t n_;
    T *volatile data_;
};
int sum_ints() { Matrix<int> m(4); return m.get(1, 2) + m.get(2, 1); }
double avg_doubles() { Matrix<double> m(3); return m.get(0, 1) / 2.0; }

// Bug 5: a packet decoder in an anonymous namespace reads a NULL buffer.
namespace {
const unsigned char *volatile g_packet = nullptr;
int decode_packet(const unsigned char *p) { return p[0] << 8 | p[1]; }
}  // namespace

static std::string g_bug;

void run_bug() {
    const std::string &b = g_bug;
    if (b == "cfg_throw") { Config c; c.load("/etc/app.conf"); }
    else if (b == "vec_at") { Inventory inv; g_sink += inv.lookup(7 + g_count); }
    else if (b == "lambda_null") { Server s; auto h = s.install_handler(); h(3); }
    else if (b == "matrix_get") {
        if (g_count == 0) g_sink += sum_ints(); else g_sink += static_cast<int>(avg_doubles());
    }
    else if (b == "matrix_get_d") g_sink += static_cast<int>(avg_doubles());
    else if (b == "decode_packet") g_sink += decode_packet(g_packet);
    else { std::fprintf(stderr, "unknown bug %s\n", b.c_str()); std::exit(2); }
}

void handle_request_a() { run_bug(); g_sink++; }
void process_item(int i) { if (i >= 0) run_bug(); g_sink++; }
void handle_batch_b() { for (int i = 0; i < 1; i++) process_item(i); g_sink++; }

struct EventLoop {
    std::vector<std::function<void()>> handlers;
    void run() { for (auto &h : handlers) h(); g_sink++; }
};

void walk(int depth) {
    if (depth <= 0) run_bug(); else walk(depth - 1);
    g_sink++;
}

int main(int argc, char **argv) {
    if (argc < 3) { std::fprintf(stderr, "usage: %s BUG PATH [DEPTH]\n", argv[0]); return 2; }
    g_bug = argv[1];
    std::string path = argv[2];
    int depth = argc > 3 ? std::atoi(argv[3]) : 3;
    if (path == "direct") run_bug();
    else if (path == "caller_a") handle_request_a();
    else if (path == "caller_b") handle_batch_b();
    else if (path == "loop") { EventLoop loop; loop.handlers.push_back([] { run_bug(); }); loop.run(); }
    else if (path == "thread") { std::thread t(run_bug); t.join(); }
    else if (path == "recurse") walk(depth);
    else { std::fprintf(stderr, "unknown path %s\n", path.c_str()); return 2; }
    return g_sink == 12345;
}
