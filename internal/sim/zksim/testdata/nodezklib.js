// Peer conformance script: node-zklib@1.3.0 (an independent ZKTeco client)
// against the simulator. Usage: node nodezklib.js HOST PORT EVENTS
// Prints "RESULT <json>" with info, users and attendances, then, on a
// second session registered for realtime events, "LISTENING" and one
// "EVENT <json>" per live event until EVENTS have arrived.
const ZKLib = require('node-zklib')

const [host, port, nEvents] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 0)]
setTimeout(() => { console.log('TIMEOUT'); process.exit(2) }, 30000)

async function main() {
  const zk = new ZKLib(host, port, 5000, 4000)
  await zk.createSocket()
  const info = await zk.getInfo()
  const users = await zk.getUsers()
  const atts = await zk.getAttendances()
  await zk.disconnect()
  console.log('RESULT ' + JSON.stringify({
    connectionType: zk.connectionType,
    info,
    users: users.data,
    usersErr: users.err ? String(users.err) : null,
    attendances: atts.data.map(a => ({ userSn: a.userSn, deviceUserId: a.deviceUserId, recordTime: a.recordTime.toISOString() })),
    attendancesErr: atts.err ? String(atts.err) : null,
  }))
  if (nEvents === 0) process.exit(0)
  const live = new ZKLib(host, port, 5000, 4000)
  await live.createSocket()
  let seen = 0
  await live.getRealTimeLogs(ev => {
    console.log('EVENT ' + JSON.stringify({ userId: ev.userId, attTime: ev.attTime.toISOString() }))
    if (++seen >= nEvents) process.exit(0)
  })
  console.log('LISTENING')
}

main().catch(err => { console.log('ERROR ' + (err && err.stack ? err.stack : JSON.stringify(err))); process.exit(1) })
