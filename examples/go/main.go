// crashgo: Go crashes for bt's tests, one per mode (first argument):
//
//	nil       a nil pointer dereference (a runtime error from SIGSEGV), with a goroutine
//	          parked holding a map, a slice and a string
//	panic     a user panic with a formatted string
//	index     an index out of range
//	error     a panic with an error value (errors.New)
//	deadlock  every goroutine blocked: fatal error, all goroutines are asleep
//	many      1,000 parked goroutines, then a nil dereference
//	wait      1,000 parked goroutines and holder; prints "ready" and waits (for live attach)
//	preempt   on one P, goroutines spinning in a loop around an inlined call, preempted
//	          by the runtime's signal wherever they were, then a nil dereference
//
// Run with GOTRACEBACK=crash so that the runtime dumps core after printing.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

type point struct {
	X, Y int
}

type Node struct {
	Name  string
	Next  *Node
	Items []int
}

func worker(id int, ch chan int, wg *sync.WaitGroup) {
	wg.Done()
	for v := range ch {
		fmt.Println(id, v)
	}
}

//go:noinline
func deref(n *Node, label string) int {
	return len(n.Items) + len(label)
}

// holder parks with values of Go's own kinds in its frame (a map, a slice, a string,
// interfaces holding an int, a pointer, a struct and an error).
//
//go:noinline
func holder(m map[string]int, xs []int, name string, v any, p any, pt any, err error, wg *sync.WaitGroup) {
	wg.Done()
	time.Sleep(time.Hour)
	fmt.Println(len(m), xs, name, v, p, pt, err)
}

// hold starts holder and returns once it is parked.
func hold() {
	var wg sync.WaitGroup
	wg.Add(1)
	go holder(map[string]int{"a": 1, "b": 2, "c": 3}, []int{4, 5, 6, 7}, "hello", 42, &Node{Name: "n"}, point{X: 3, Y: 4}, errors.New("boom"), &wg)
	wg.Wait()
}

//go:noinline
func lookup(a []int, i int) int {
	return a[i]
}

// bump is inlined into spin's loop, whose every instruction is the inlined call's
// or the loop's jump back: a preemption lands at either.
func bump(p *uint64) {
	*p += 3
}

func spin(p *uint64) {
	for {
		bump(p)
	}
}

func park(n int, ch chan int) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go worker(i, ch, &wg)
	}
	wg.Wait()
}

func main() {
	mode := "nil"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	ch := make(chan int)
	switch mode {
	case "nil":
		park(5, ch)
		go func() { time.Sleep(time.Hour) }()
		hold()
		var n *Node
		fmt.Println(deref(n, "hello"))
	case "panic":
		park(3, ch)
		panic(fmt.Sprintf("user panic: bad state %d", 42))
	case "index":
		park(3, ch)
		fmt.Println(lookup([]int{1, 2, 3}, len(os.Args)+5))
	case "error":
		park(2, ch)
		panic(errors.New("configuration file is missing"))
	case "deadlock":
		park(4, ch)
		<-ch
	case "many":
		park(1000, ch)
		var n *Node
		fmt.Println(deref(n, "many"))
	case "preempt":
		// One P: a spinning goroutine leaves it only when the runtime preempts
		// it asynchronously, parking it in asyncPreempt at the interrupted pc.
		runtime.GOMAXPROCS(1)
		counters := make([]uint64, 8*8)
		for i := 0; i < 8; i++ {
			go spin(&counters[i*8])
		}
		time.Sleep(300 * time.Millisecond)
		var n *Node
		fmt.Println(deref(n, "preempt"))
	case "wait":
		park(1000, ch)
		hold()
		fmt.Println("ready")
		// Asleep on a timer, not on ch: newer runtimes call 1,000 goroutines
		// blocked on channels with no timer pending a deadlock and exit.
		for {
			time.Sleep(time.Hour)
		}
	}
}
