package console

import (
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/console/consoledb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// A device's latest events on its page, polled by htmx every two seconds
// (the events fragment): a door opened from the page shows its event
// there as soon as the gateway has sent it. The device is read through
// the API first (its route decides who may see it), the events with one
// statement in the caller's tenant context.

// deviceEventsShown is how many of a device's latest events its page
// lists.
const deviceEventsShown = 15

// deviceEvent is a device event as the page shows it.
type deviceEvent struct {
	consoledb.DeviceEventsRow
}

// Kind is the event's catalogue key and arguments: a badge (Hikvision
// major 5), a remote door action (major 3, minors 0x400–0x403), else its
// codes.
func (e deviceEvent) Kind(v view) string {
	switch {
	case e.MajorCode == 5:
		return v.T("event.badge")
	case e.MajorCode == 3 && e.MinorCode >= 0x400 && e.MinorCode <= 0x403:
		return v.T("event.remote")
	}
	return v.F("event.other", e.MajorCode, e.MinorCode)
}

// Person is the event's employee number, else its card, else "".
func (e deviceEvent) Person() string {
	if e.EmployeeNumber != nil && *e.EmployeeNumber != "" {
		return *e.EmployeeNumber
	}
	if e.CardNumber != nil {
		return *e.CardNumber
	}
	return ""
}

// loadDeviceEvents reads device id's latest events in p's tenant context.
func (c *Console) loadDeviceEvents(r *http.Request, p Principal, id int64) ([]deviceEvent, error) {
	var rows []consoledb.DeviceEventsRow
	err := postgres.InTenant(r.Context(), p.DB, p.Tenant, func(tx pgx.Tx) error {
		var err error
		rows, err = consoledb.New(tx).DeviceEvents(r.Context(), consoledb.DeviceEventsParams{DeviceID: id, MaxRows: deviceEventsShown})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]deviceEvent, len(rows))
	for i, row := range rows {
		out[i] = deviceEvent{row}
	}
	return out, nil
}

// deviceEvents is the fragment htmx polls: the device's latest events
// (after the API's check that the caller sees the device).
func (c *Console) deviceEvents(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.NotFound, "", "no such device")
	}
	var d deviceData
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/devices/"+strconv.FormatInt(id, 10), nil, nil, &d.Device); err != nil {
		return err
	}
	if d.Events, err = c.loadDeviceEvents(r, p, id); err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "device.title")
	v.Loc, v.Data = loc, d
	c.renderFragment(w, "device", "events", v)
	return nil
}
