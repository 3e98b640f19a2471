package worker

// Within its share of a receiver's slots (receiverlimit.go) a process also
// limits itself with a window per receiver that starts small and grows with
// each answer (slow start): a receiver that hangs holds only a couple of
// workers until the circuit breaker has seen enough timeouts to open,
// instead of up to the whole limit; a timeout halves the window, a timely
// answer widens it by one. The window is a field of receiverSlots, guarded
// by the semaphore's lock.

// initialWindow is the window of a receiver this process has not heard
// from: enough for a fast receiver's first deliveries to overlap, few
// enough that many hanging receivers cannot take every worker.
const initialWindow = 2

// firstWindow is the window of a receiver seen for the first time.
func firstWindow(limit int) int { return min(initialWindow, limit) }

// windowFull reports whether the deliveries running fill the window.
func (rs *receiverSlots) windowFull() bool { return rs.inUse >= rs.window }

// adjustWindow follows a delivery's end: a timeout halves the window, a
// timely answer widens it by one, up to limit.
func (rs *receiverSlots) adjustWindow(timedOut bool, limit int) {
	if timedOut {
		rs.window = max(1, rs.window/2)
	} else {
		rs.window = min(limit, rs.window+1)
	}
}
