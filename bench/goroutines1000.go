// Benchmark workload: a Go program with 1,000 goroutines parked on a channel, each
// holding a struct with a string, a slice and a map.
//
//	goroutines1000 forever   prints "ready" once every goroutine is parked, runs forever
//	goroutines1000 crash     once every goroutine is parked, dereferences nil (a core with GOTRACEBACK=crash)
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

type item struct {
	name  string
	count int
	tags  []string
	m     map[string]int
}

var sink *item

func work(i int, wg *sync.WaitGroup, ch chan int) {
	it := item{name: fmt.Sprintf("w%d", i), count: i, tags: []string{"a", "b"}, m: map[string]int{"x": i}}
	wg.Done()
	v := <-ch
	fmt.Println(it.name, v)
}

func main() {
	var wg sync.WaitGroup
	ch := make(chan int)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go work(i, &wg, ch)
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond) // every worker reaches its receive
	if len(os.Args) > 1 && os.Args[1] == "crash" {
		debug.SetTraceback("crash")
		fmt.Println(sink.name)
	}
	fmt.Println("ready")
	for {
		time.Sleep(time.Hour)
	}
}
