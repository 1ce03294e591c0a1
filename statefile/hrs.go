package statefile

import "fmt"

// Step is the consensus step a signature belongs to. The numbering is
// CometBFT FilePV's (propose 1, prevote 2, precommit 3), not tmkms's.
type Step int8

// The steps, in the order CometBFT moves through them within one round.
const (
	StepNone      Step = 0 // nothing signed yet (a fresh state)
	StepPropose   Step = 1
	StepPrevote   Step = 2
	StepPrecommit Step = 3
)

// String returns the step's lower-case name.
func (s Step) String() string {
	switch s {
	case StepNone:
		return "none"
	case StepPropose:
		return "propose"
	case StepPrevote:
		return "prevote"
	case StepPrecommit:
		return "precommit"
	}
	return fmt.Sprintf("step(%d)", int8(s))
}

// Valid reports whether s is one of the four known steps.
func (s Step) Valid() bool { return s >= StepNone && s <= StepPrecommit }

// HRS is a height/round/step position in consensus. Positions are totally
// ordered: by height, then round, then step.
type HRS struct {
	Height int64
	Round  int32
	Step   Step
}

// Compare returns -1, 0 or +1 as h is before, equal to or after o.
func (h HRS) Compare(o HRS) int {
	switch {
	case h.Height != o.Height:
		return cmp3(h.Height < o.Height)
	case h.Round != o.Round:
		return cmp3(h.Round < o.Round)
	case h.Step != o.Step:
		return cmp3(h.Step < o.Step)
	}
	return 0
}

func cmp3(less bool) int {
	if less {
		return -1
	}
	return 1
}

// String formats h as "height/round/step", e.g. "120/0/prevote".
func (h HRS) String() string { return fmt.Sprintf("%d/%d/%s", h.Height, h.Round, h.Step) }
