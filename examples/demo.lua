-- Meeting-operations briefing across all four integrations.
--
--   kosmo run --demo examples/demo.lua              against the built-in simulators
--   kosmo run --demo --example demo                 the same, from an installed wheel (no clone)
--   kosmo run --demo --dry-run examples/demo.lua    the same, describing the writes instead of sending them
--   kosmo run examples/demo.lua                     against your real accounts (see examples/accounts.yaml)
--
-- It lists upcoming webinars with their panelists, gives every upcoming Cal.com booking a
-- Whereby room (a write), sums up attendance of the last finished webinar session, checks
-- Agora cloud recordings, and returns a summary table.

local gw = app.integrations["goto-webinar"]
local cal = app.integrations["cal-com"]
local whereby = app.integrations.whereby
local agora = app.integrations.agora

local summary = {webinars = 0, rooms_created = 0, rooms_failed = 0, recordings = 0}
local now = os.date("!%Y-%m-%dT%H:%M:%S")

-- 1. Upcoming webinars and who speaks at them.
local organizer = gw.get_current_user{}
print(("GoTo Webinar, organizer %s %s <%s>"):format(organizer.firstName, organizer.lastName, organizer.email))
local upcoming = gw.list_webinars{status = "ACTIVE", size = 5}._embedded.webinars
for _, webinar in ipairs(upcoming) do
  local names = {}
  for _, panelist in ipairs(gw.list_panelists{webinar_id = webinar.webinarKey}._embedded.panelists) do
    names[#names + 1] = panelist.name
  end
  local next_time = webinar.times[#webinar.times].startTime
  for _, slot in ipairs(webinar.times) do
    if slot.startTime > now then next_time = slot.startTime break end
  end
  print(("  %s  %s  (panel: %s)"):format(next_time, webinar.subject,
    #names > 0 and table.concat(names, ", ") or "none yet"))
  summary.webinars = summary.webinars + 1
end

-- 2. Attendance of the most recent finished session of an ended webinar.
local ended = gw.list_webinars{status = "ENDED", size = 1}._embedded.webinars[1]
if ended then
  local sessions = gw.list_sessions{webinar_id = ended.webinarKey}._embedded.sessions
  local last = sessions[#sessions]
  if last then
    local session = gw.get_session{webinar_id = ended.webinarKey, id = last.sessionKey}
    print(("  last session of %q: %d attendees, %d minutes"):format(ended.subject, session.attendees,
      session.duration // 60))
    summary.last_session = {webinar = ended.subject, attendees = session.attendees}
  end
end

-- 3. Every upcoming confirmed booking gets a Whereby room that lasts until the booking ends.
local me = cal.get_current_user{}.user
print(("Cal.com, %s: upcoming confirmed bookings"):format(me.name))
for _, booking in ipairs(cal.list_bookings{status = "confirmed", limit = 10}.bookings) do
  if booking.startTime > now then
    local ok, room = pcall(whereby.create_room, {
      room_name_prefix = "booking" .. booking.id,
      room_mode = "group",
      end_date = booking.endTime,
    })
    if ok and room.dry_run then
      print(("  %s  %s -> would create a room (%s %s)"):format(booking.startTime, booking.title,
        room.would_send.method, room.would_send.url))
    elseif ok then
      print(("  %s  %s -> %s"):format(booking.startTime, booking.title, room.meetingUrl))
      summary.rooms_created = summary.rooms_created + 1
    else
      print(("  %s  %s -> no room: %s"):format(booking.startTime, booking.title, tostring(room)))
      summary.rooms_failed = summary.rooms_failed + 1
    end
  end
end

-- 4. Agora cloud recordings started through this runtime, with their live state.
for _, recording in ipairs(agora.list_recordings{limit = 5}.data) do
  local detail = agora.get_recording{recording_id = recording.sid}
  print(("Agora recording %s in channel %q: %s, %d file(s)"):format(detail.sid, detail.cname, detail.status,
    #(detail.file_list or {})))
  summary.recordings = summary.recordings + 1
end

return summary
