package controlplane

import (
	"container/heap"
	"sync"
	"time"
)

// sim runs concurrent work in simulated time, one goroutine at a time: a goroutine that
// waits (Sleep, or Acquire on a full semaphore) hands the clock to the next one due, and
// the clock jumps to its time. Each goroutine so sees the time its own waits took while
// the others ran, as concurrent Lambda invocations do; ties wake in the order they were
// made, so a run is the same every time.
type sim struct {
	mu   sync.Mutex
	now  time.Duration
	due  wakeups
	seq  int
	live int // goroutines started and not finished
	done chan struct{}
}

type wakeup struct {
	at  time.Duration
	seq int
	ch  chan struct{}
}

type wakeups []wakeup

func (w wakeups) Len() int { return len(w) }
func (w wakeups) Less(i, j int) bool {
	return w[i].at < w[j].at || w[i].at == w[j].at && w[i].seq < w[j].seq
}
func (w wakeups) Swap(i, j int) { w[i], w[j] = w[j], w[i] }
func (w *wakeups) Push(x any)   { *w = append(*w, x.(wakeup)) }
func (w *wakeups) Pop() any {
	it := (*w)[len(*w)-1]
	*w = (*w)[:len(*w)-1]
	return it
}

func newSim() *sim { return &sim{done: make(chan struct{})} }

// Now is the simulated time.
func (s *sim) Now() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Go starts f, due now, after the goroutines already due.
func (s *sim) Go(f func()) {
	s.mu.Lock()
	s.live++
	ch := s.schedule(s.now)
	s.mu.Unlock()
	go func() {
		<-ch
		f()
		s.mu.Lock()
		s.live--
		s.yield()
		s.mu.Unlock()
	}()
}

// Sleep waits d of simulated time.
func (s *sim) Sleep(d time.Duration) {
	s.mu.Lock()
	ch := s.schedule(s.now + d)
	s.yield()
	s.mu.Unlock()
	<-ch
}

// Run starts the clock and returns when every goroutine started with Go has finished.
func (s *sim) Run() {
	s.mu.Lock()
	s.yield()
	s.mu.Unlock()
	<-s.done
}

// schedule queues a new wakeup at at; s.mu is held.
func (s *sim) schedule(at time.Duration) chan struct{} {
	ch := make(chan struct{})
	s.wake(at, ch)
	return ch
}

// wake queues ch to be closed at at, after the wakeups already due then; s.mu is held.
func (s *sim) wake(at time.Duration, ch chan struct{}) {
	s.seq++
	heap.Push(&s.due, wakeup{at, s.seq, ch})
}

// yield gives up the clock to the goroutine due first, moving time to when it is due;
// s.mu is held.
func (s *sim) yield() {
	if s.due.Len() == 0 {
		if s.live == 0 {
			close(s.done)
		}
		return
	}
	next := heap.Pop(&s.due).(wakeup)
	s.now = max(s.now, next.at)
	close(next.ch)
}

// semaphore bounds how many goroutines of a sim hold it at once: Lambda's concurrency.
type semaphore struct {
	s       *sim
	free    int
	waiting []chan struct{}
}

// Acquire takes a slot, waiting in simulated time for one to be released.
func (m *semaphore) Acquire() {
	s := m.s
	s.mu.Lock()
	if m.free > 0 {
		m.free--
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	m.waiting = append(m.waiting, ch)
	s.yield()
	s.mu.Unlock()
	<-ch
}

// Release hands the slot to the first waiter, due now, or frees it.
func (m *semaphore) Release() {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(m.waiting) == 0 {
		m.free++
		return
	}
	s.wake(s.now, m.waiting[0])
	m.waiting = m.waiting[1:]
}
