package report

import (
	"io"
	"strconv"
)

// WriteBadgesCSV writes badges (the unknown-badges report) as CSV.
func WriteBadgesCSV(w io.Writer, badges []Badge) error {
	cw, err := newCSV(w, []string{"at", "device_id", "device_serial", "door", "direction", "employee_number", "card_number"})
	if err != nil {
		return err
	}
	for _, b := range badges {
		door := ""
		if b.Door != nil {
			door = strconv.Itoa(int(*b.Door))
		}
		if err := cw.write([]string{csvTime(&b.At), csvOptInt(b.DeviceID), b.DeviceSerial, door, b.Direction, b.EmployeeNumber, b.CardNumber}); err != nil {
			return err
		}
	}
	return cw.flush()
}
