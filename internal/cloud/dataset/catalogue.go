package dataset

import "encoding/json"

// The organisation's shape: departments, what their people run and visit,
// and the report policy that classifies it. Fixed tables, so that a seed
// alone decides a dataset.

// deptSpec is one department of the tree: parent is an index into
// departments (-1 for a top-level one), weight its share of employees,
// profile what its people work with.
type deptSpec struct {
	name    string
	parent  int
	weight  int
	profile int
	title   string // the employees' position
}

// departments is the tree: five top-level departments, five below them.
var departments = []deptSpec{
	{"Engineering", -1, 6, profDeveloper, "Engineer"},
	{"Sales", -1, 8, profSales, "Account Manager"},
	{"Finance", -1, 4, profFinance, "Financial Analyst"},
	{"Operations", -1, 6, profSupport, "Operations Specialist"},
	{"Human Resources", -1, 4, profOffice, "HR Specialist"},
	{"Backend", 0, 16, profDeveloper, "Backend Developer"},
	{"Frontend", 0, 14, profDeveloper, "Frontend Developer"},
	{"Field Sales", 1, 12, profSales, "Sales Representative"},
	{"Accounting", 2, 10, profFinance, "Accountant"},
	{"Customer Support", 3, 20, profSupport, "Support Agent"},
}

// Profiles: what a department's people run.
const (
	profDeveloper = iota
	profSales
	profFinance
	profSupport
	profOffice
)

// app is a process the agents see in the foreground; site, when set, is
// the index of the site its window shows (browsers).
type app struct {
	process string
	titles  []string
	browser bool
}

// apps is every process of the dataset (the first ten are classified by
// the report policy).
var apps = []app{
	{"code.exe", []string{"main.go - staffcontrol - Visual Studio Code", "handlers.go - api - Visual Studio Code", "README.md - docs - Visual Studio Code", "report_test.go - report - Visual Studio Code"}, false},
	{"devenv.exe", []string{"Agent.sln - Microsoft Visual Studio", "Collector.cs - Agent - Microsoft Visual Studio"}, false},
	{"WindowsTerminal.exe", []string{"Windows PowerShell", "ubuntu@build-01: ~/src", "Command Prompt"}, false},
	{"excel.exe", []string{"Budget 2026.xlsx - Excel", "Q4 forecast.xlsx - Excel", "Payroll December.xlsx - Excel", "Pipeline.xlsx - Excel"}, false},
	{"winword.exe", []string{"Employment contract.docx - Word", "Onboarding checklist.docx - Word", "Proposal ACME.docx - Word"}, false},
	{"outlook.exe", []string{"Inbox - Outlook", "Calendar - Outlook", "RE: Invoice 4471 - Message (HTML)", "Meeting notes - Message (HTML)"}, false},
	{"teams.exe", []string{"Chat | Microsoft Teams", "Daily stand-up | Microsoft Teams", "Calendar | Microsoft Teams"}, false},
	{"1cv8.exe", []string{"1C:Enterprise - Accounting", "1C:Enterprise - Salary and HR"}, false},
	{"spotify.exe", []string{"Spotify Premium", "Discover Weekly - Spotify"}, false},
	{"steam.exe", []string{"Steam", "Library - Steam"}, false},
	{"chrome.exe", nil, true},
	{"msedge.exe", nil, true},
	{"telegram.exe", []string{"Telegram", "Saved Messages - Telegram"}, false},
	{"explorer.exe", []string{"Downloads - File Explorer", "Documents - File Explorer"}, false},
}

// Indices into apps.
const (
	appCode = iota
	appDevenv
	appTerminal
	appExcel
	appWord
	appOutlook
	appTeams
	app1C
	appSpotify
	appSteam
	appChrome
	appEdge
	appTelegram
	appExplorer
)

// site is a web site: its host and a few pages (path, title).
type site struct {
	host  string
	pages [][2]string
}

// sites is every site of the dataset (the report policy classifies them
// all but the last few).
var sites = []site{
	{"github.com", [][2]string{{"/staffcontrol/staffcontrol/pulls", "Pull requests · staffcontrol/staffcontrol"}, {"/staffcontrol/staffcontrol/issues/15", "Reports · Issue #15"}, {"/jackc/pgx", "jackc/pgx: PostgreSQL driver and toolkit for Go"}}},
	{"stackoverflow.com", [][2]string{{"/questions/tagged/go", "Newest 'go' Questions - Stack Overflow"}, {"/questions/1711631", "Improve INSERT-per-second performance of SQLite - Stack Overflow"}}},
	{"staffcontrol.atlassian.net", [][2]string{{"/jira/software/projects/SC/boards/1", "SC board - Jira"}, {"/wiki/spaces/ENG/overview", "Engineering - Confluence"}}},
	{"acme.my.salesforce.com", [][2]string{{"/lightning/o/Opportunity/list", "Opportunities | Salesforce"}, {"/lightning/o/Account/list", "Accounts | Salesforce"}}},
	{"docs.google.com", [][2]string{{"/spreadsheets/d/1a2b3c", "Sales plan - Google Sheets"}, {"/document/d/9z8y7x", "Meeting notes - Google Docs"}}},
	{"mail.google.com", [][2]string{{"/mail/u/0/#inbox", "Inbox - Gmail"}}},
	{"en.wikipedia.org", [][2]string{{"/wiki/PostgreSQL", "PostgreSQL - Wikipedia"}, {"/wiki/Double-entry_bookkeeping", "Double-entry bookkeeping - Wikipedia"}}},
	{"helpdesk.staffcontrol.example", [][2]string{{"/tickets/open", "Open tickets - Helpdesk"}, {"/tickets/48213", "Ticket #48213 - Helpdesk"}}},
	{"youtube.com", [][2]string{{"/watch?v=dQw4w9WgXcQ", "Music video - YouTube"}, {"/feed/trending", "Trending - YouTube"}}},
	{"facebook.com", [][2]string{{"/", "Facebook"}}},
	{"instagram.com", [][2]string{{"/explore/", "Instagram"}}},
	{"reddit.com", [][2]string{{"/r/golang/", "r/golang"}, {"/r/funny/", "r/funny"}}},
	{"netflix.com", [][2]string{{"/browse", "Home - Netflix"}}},
	{"x.com", [][2]string{{"/home", "Home / X"}}},
	{"news.ycombinator.com", [][2]string{{"/", "Hacker News"}}},
	{"booking.com", [][2]string{{"/searchresults.html", "Hotels - Booking.com"}}},
	{"amazon.com", [][2]string{{"/gp/cart/view.html", "Amazon.com Shopping Cart"}}},
}

// Indices into sites.
const (
	siteGitHub = iota
	siteStackOverflow
	siteAtlassian
	siteSalesforce
	siteDocs
	siteMail
	siteWikipedia
	siteHelpdesk
	siteYouTube
	siteFacebook
	siteInstagram
	siteReddit
	siteNetflix
	siteX
	siteHN
	siteBooking
	siteAmazon
)

// weighted is a choice among indices by weight.
type weighted struct {
	items []int
	total int
	cum   []int
}

func newWeighted(pairs ...int) weighted {
	var w weighted
	for i := 0; i+1 < len(pairs); i += 2 {
		w.total += pairs[i+1]
		w.items = append(w.items, pairs[i])
		w.cum = append(w.cum, w.total)
	}
	return w
}

func (w weighted) pick(r *rng) int {
	x := r.intn(w.total)
	for i, c := range w.cum {
		if x < c {
			return w.items[i]
		}
	}
	return w.items[len(w.items)-1]
}

// profile is what people of one kind run and, in a browser, visit.
type profile struct {
	apps  weighted
	sites weighted
}

// profiles, by the prof* constants.
var profiles = []profile{
	profDeveloper: {
		apps: newWeighted(appCode, 30, appDevenv, 6, appTerminal, 12, appChrome, 30, appTeams, 8, appOutlook, 6, appSpotify, 3, appTelegram, 3, appExplorer, 2),
		sites: newWeighted(siteGitHub, 35, siteStackOverflow, 20, siteAtlassian, 20, siteDocs, 5, siteWikipedia, 5, siteHN, 5, siteYouTube, 4,
			siteReddit, 4, siteX, 2),
	},
	profSales: {
		apps: newWeighted(appChrome, 40, appOutlook, 20, appTeams, 12, appExcel, 12, appWord, 6, appTelegram, 5, appSteam, 1, appExplorer, 4),
		sites: newWeighted(siteSalesforce, 40, siteMail, 15, siteDocs, 15, siteFacebook, 6, siteInstagram, 5, siteYouTube, 5, siteBooking, 6,
			siteAmazon, 4, siteX, 4),
	},
	profFinance: {
		apps:  newWeighted(appExcel, 40, app1C, 20, appOutlook, 12, appChrome, 18, appWord, 4, appTeams, 4, appExplorer, 2),
		sites: newWeighted(siteDocs, 30, siteMail, 25, siteWikipedia, 15, siteYouTube, 10, siteNetflix, 5, siteAmazon, 10, siteFacebook, 5),
	},
	profSupport: {
		apps:  newWeighted(appChrome, 50, appTeams, 15, appOutlook, 15, appTelegram, 8, appSpotify, 4, appExcel, 4, appExplorer, 4),
		sites: newWeighted(siteHelpdesk, 55, siteAtlassian, 15, siteMail, 10, siteYouTube, 8, siteReddit, 6, siteInstagram, 6),
	},
	profOffice: {
		apps:  newWeighted(appWord, 25, appOutlook, 25, appExcel, 15, appChrome, 20, app1C, 8, appTeams, 7),
		sites: newWeighted(siteDocs, 30, siteMail, 30, siteFacebook, 10, siteBooking, 10, siteYouTube, 10, siteAmazon, 10),
	},
}

// PolicyName is the name of the report policy the generator creates.
const PolicyName = "Reports policy (generated)"

// policyContent is the report policy: idle threshold, working hours
// (09:00–18:00 Monday to Friday, 10 minutes' grace) and the productivity
// categories of ten applications and fifteen sites.
func policyContent() []byte {
	doc := map[string]any{
		"activity":      map[string]any{"track_windows": true, "track_sites": true, "idle_seconds": 300},
		"screenshots":   map[string]any{"enabled": true, "interval_seconds": 300, "quality": 60},
		"working_hours": map[string]any{"start": "09:00", "end": "18:00", "days": []int{1, 2, 3, 4, 5}, "grace_minutes": 10},
		"productivity": map[string]any{
			"productive": map[string]any{
				"processes": []string{"code.exe", "devenv.exe", "WindowsTerminal.exe", "excel.exe", "winword.exe", "outlook.exe", "teams.exe", "1cv8.exe"},
				"sites": []string{"github.com", "stackoverflow.com", "atlassian.net", "salesforce.com", "docs.google.com", "mail.google.com",
					"wikipedia.org", "helpdesk.staffcontrol.example"},
			},
			"unproductive": map[string]any{
				"processes": []string{"spotify.exe", "steam.exe"},
				"sites":     []string{"youtube.com", "facebook.com", "instagram.com", "reddit.com", "netflix.com", "x.com", "booking.com"},
			},
		},
	}
	b, _ := json.Marshal(doc) // maps of strings, numbers and slices: cannot fail
	return b
}

// Names of people (the generator combines them by hash).
var (
	firstNames = []string{"Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Greta", "Hasan", "Ines", "Jonas", "Katarina", "Leon",
		"Maria", "Nils", "Olga", "Pavel", "Qiu", "Rosa", "Stefan", "Tamara", "Umar", "Vera", "Wojciech", "Xenia", "Yusuf", "Zofia",
		"Aziz", "Bianca", "Carlos", "Dilnoza", "Emil", "Fatima", "Gulnora", "Henrik", "Irina", "Jamshid", "Klara", "Lukas", "Malika", "Noah"}
	lastNames = []string{"Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Schulz",
		"Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hartmann", "Lange", "Karimov",
		"Yusupova", "Rahimov", "Novak", "Kowalski", "Rossi", "García", "Dubois", "Jansen", "Nielsen", "Andersson", "Popescu",
		"Horvat", "Ivanova", "Petrov", "Tashkentova", "Aliev", "Smith", "O'Brien"}
)
