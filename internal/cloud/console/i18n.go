package console

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The console's messages: a small map catalogue per language (English,
// Russian, Uzbek in Latin script). English is complete and the fallback;
// TestCatalogues checks the others have every English key and no other.
// golang.org/x/text/message would add plural rules and a module for a
// few dozen strings with no plural forms, so a map it is.

// Lang is a language the console speaks.
type Lang string

// The console's languages.
const (
	English Lang = "en"
	Russian Lang = "ru"
	Uzbek   Lang = "uz"
)

// Languages lists the console's languages in the order the switcher shows
// them.
var languages = []Lang{English, Russian, Uzbek}

// languageNames are each language's name in itself.
var languageNames = map[Lang]string{English: "English", Russian: "Русский", Uzbek: "Oʻzbekcha"}

var catalogues = map[Lang]map[string]string{
	English: {
		"app.name":              "Staff Control",
		"skip":                  "Skip to main content",
		"nav.label":             "Main",
		"nav.overview":          "Overview",
		"nav.employees":         "Employees",
		"signout":               "Sign out",
		"language":              "Language",
		"language.apply":        "Apply",
		"signin.title":          "Sign in",
		"signin.email":          "E-mail",
		"signin.password":       "Password",
		"signin.submit":         "Sign in",
		"signin.failed":         "The e-mail or password is wrong, or the account is disabled.",
		"signin.locked":         "Too many failed attempts: try again in %d s.",
		"signin.unavailable":    "Sign-in is unavailable right now: try again later.",
		"signedin.as":           "Signed in: %s",
		"overview.title":        "Overview",
		"overview.gateways":     "Gateways online",
		"overview.events":       "Events in the last hour",
		"overview.windows":      "application windows",
		"overview.doors":        "door events",
		"overview.buffers":      "Gateway buffers",
		"overview.nogateways":   "No gateways to show.",
		"overview.timezone":     "Times are in %s.",
		"gateway.name":          "Gateway",
		"gateway.status":        "Status",
		"gateway.lastseen":      "Last seen",
		"gateway.buffer":        "Buffer used",
		"gateway.queue":         "Queue",
		"gateway.agents":        "Agents",
		"employees.title":       "Employees",
		"employees.search":      "Search (name, number, e-mail)",
		"employees.department":  "Department",
		"employees.all":         "All departments",
		"employees.filter":      "Filter",
		"employees.none":        "No employees match.",
		"employees.next":        "Next page",
		"employees.first":       "First page",
		"employee.number":       "Number",
		"employee.name":         "Name",
		"employee.position":     "Position",
		"employee.email":        "E-mail",
		"employee.status":       "Status",
		"employee.updated":      "Updated",
		"employee.identities":   "Identities",
		"employee.noidentities": "No identities.",
		"identity.kind":         "Kind",
		"identity.value":        "Value",
		"status.active":         "active",
		"status.inactive":       "inactive",
		"status.online":         "online",
		"status.offline":        "offline",
		"error.title":           "Something went wrong",
		"error.notfound":        "Not found.",
		"error.csrf":            "This form has expired or did not come from this site: reload the page and try again.",
		"error.back":            "Back to the overview",
		"none":                  "—",
		"employee.apps":         "Top applications today",
		"employee.noapps":       "No application activity today.",
		"app.process":           "Application",
		"app.time":              "Time (h:mm)",
		"app.lasttitle":         "Latest window title",
	},
	Russian: {
		"app.name":              "Staff Control",
		"skip":                  "Перейти к содержимому",
		"nav.label":             "Главное меню",
		"nav.overview":          "Обзор",
		"nav.employees":         "Сотрудники",
		"signout":               "Выйти",
		"language":              "Язык",
		"language.apply":        "Применить",
		"signin.title":          "Вход",
		"signin.email":          "Эл. почта",
		"signin.password":       "Пароль",
		"signin.submit":         "Войти",
		"signin.failed":         "Неверная эл. почта или пароль, либо учётная запись отключена.",
		"signin.locked":         "Слишком много неудачных попыток: повторите через %d с.",
		"signin.unavailable":    "Вход сейчас недоступен: попробуйте позже.",
		"signedin.as":           "Вы вошли: %s",
		"overview.title":        "Обзор",
		"overview.gateways":     "Шлюзы в сети",
		"overview.events":       "События за последний час",
		"overview.windows":      "окна приложений",
		"overview.doors":        "события дверей",
		"overview.buffers":      "Буферы шлюзов",
		"overview.nogateways":   "Нет шлюзов для показа.",
		"overview.timezone":     "Время указано в поясе %s.",
		"gateway.name":          "Шлюз",
		"gateway.status":        "Состояние",
		"gateway.lastseen":      "Последний контакт",
		"gateway.buffer":        "Заполнение буфера",
		"gateway.queue":         "Очередь",
		"gateway.agents":        "Агенты",
		"employees.title":       "Сотрудники",
		"employees.search":      "Поиск (имя, номер, эл. почта)",
		"employees.department":  "Отдел",
		"employees.all":         "Все отделы",
		"employees.filter":      "Показать",
		"employees.none":        "Сотрудники не найдены.",
		"employees.next":        "Следующая страница",
		"employees.first":       "Первая страница",
		"employee.number":       "Номер",
		"employee.name":         "Имя",
		"employee.position":     "Должность",
		"employee.email":        "Эл. почта",
		"employee.status":       "Статус",
		"employee.updated":      "Изменён",
		"employee.identities":   "Идентификаторы",
		"employee.noidentities": "Идентификаторов нет.",
		"identity.kind":         "Тип",
		"identity.value":        "Значение",
		"status.active":         "работает",
		"status.inactive":       "не работает",
		"status.online":         "в сети",
		"status.offline":        "не в сети",
		"error.title":           "Что-то пошло не так",
		"error.notfound":        "Не найдено.",
		"error.csrf":            "Форма устарела или отправлена не с этого сайта: обновите страницу и повторите.",
		"error.back":            "К обзору",
		"none":                  "—",
		"employee.apps":         "Основные приложения сегодня",
		"employee.noapps":       "Сегодня активности в приложениях нет.",
		"app.process":           "Приложение",
		"app.time":              "Время (ч:мм)",
		"app.lasttitle":         "Последний заголовок окна",
	},
	Uzbek: {
		"app.name":              "Staff Control",
		"skip":                  "Asosiy mazmunga oʻtish",
		"nav.label":             "Asosiy menyu",
		"nav.overview":          "Umumiy koʻrinish",
		"nav.employees":         "Xodimlar",
		"signout":               "Chiqish",
		"language":              "Til",
		"language.apply":        "Qoʻllash",
		"signin.title":          "Kirish",
		"signin.email":          "E-pochta",
		"signin.password":       "Parol",
		"signin.submit":         "Kirish",
		"signin.failed":         "E-pochta yoki parol notoʻgʻri yoki hisob oʻchirilgan.",
		"signin.locked":         "Juda koʻp muvaffaqiyatsiz urinish: %d soniyadan keyin qayta urining.",
		"signin.unavailable":    "Hozir kirish imkoni yoʻq: keyinroq urining.",
		"signedin.as":           "Kirgansiz: %s",
		"overview.title":        "Umumiy koʻrinish",
		"overview.gateways":     "Tarmoqdagi shlyuzlar",
		"overview.events":       "Soʻnggi soatdagi hodisalar",
		"overview.windows":      "ilova oynalari",
		"overview.doors":        "eshik hodisalari",
		"overview.buffers":      "Shlyuz buferlari",
		"overview.nogateways":   "Koʻrsatish uchun shlyuz yoʻq.",
		"overview.timezone":     "Vaqtlar %s mintaqasida.",
		"gateway.name":          "Shlyuz",
		"gateway.status":        "Holat",
		"gateway.lastseen":      "Oxirgi aloqa",
		"gateway.buffer":        "Bufer bandligi",
		"gateway.queue":         "Navbat",
		"gateway.agents":        "Agentlar",
		"employees.title":       "Xodimlar",
		"employees.search":      "Qidirish (ism, raqam, e-pochta)",
		"employees.department":  "Boʻlim",
		"employees.all":         "Barcha boʻlimlar",
		"employees.filter":      "Koʻrsatish",
		"employees.none":        "Xodimlar topilmadi.",
		"employees.next":        "Keyingi sahifa",
		"employees.first":       "Birinchi sahifa",
		"employee.number":       "Raqam",
		"employee.name":         "Ism",
		"employee.position":     "Lavozim",
		"employee.email":        "E-pochta",
		"employee.status":       "Holat",
		"employee.updated":      "Oʻzgartirilgan",
		"employee.identities":   "Identifikatorlar",
		"employee.noidentities": "Identifikatorlar yoʻq.",
		"identity.kind":         "Turi",
		"identity.value":        "Qiymati",
		"status.active":         "faol",
		"status.inactive":       "nofaol",
		"status.online":         "tarmoqda",
		"status.offline":        "tarmoqda emas",
		"error.title":           "Nimadir notoʻgʻri ketdi",
		"error.notfound":        "Topilmadi.",
		"error.csrf":            "Shakl eskirgan yoki boshqa saytdan yuborilgan: sahifani yangilab, qayta urining.",
		"error.back":            "Umumiy koʻrinishga qaytish",
		"none":                  "—",
		"employee.apps":         "Bugungi asosiy ilovalar",
		"employee.noapps":       "Bugun ilovalarda faollik yoʻq.",
		"app.process":           "Ilova",
		"app.time":              "Vaqt (s:dd)",
		"app.lasttitle":         "Oxirgi oyna sarlavhasi",
	},
}

// T returns the message of key in l (English when l lacks it, the key
// itself when English does too, so a missing message shows, not hides).
func (l Lang) T(key string) string {
	if m, ok := catalogues[l][key]; ok {
		return m
	}
	if m, ok := pageCatalogues[l][key]; ok {
		return m
	}
	if m, ok := catalogues[English][key]; ok {
		return m
	}
	if m, ok := pageCatalogues[English][key]; ok {
		return m
	}
	return key
}

// F formats the message of key with args (fmt verbs).
func (l Lang) F(key string, args ...any) string {
	return fmt.Sprintf(l.T(key), args...)
}

// parseLang returns the console language s names ("ru", "ru-RU", "uz",
// "uz-Latn-UZ", …) or "" when it names none.
func parseLang(s string) Lang {
	base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "-")
	base, _, _ = strings.Cut(base, "_")
	if l := Lang(base); slices.Contains(languages, l) {
		if l == Uzbek && strings.Contains(strings.ToLower(s), "cyrl") {
			return "" // the catalogue is Latin script
		}
		return l
	}
	return ""
}

// fromAcceptLanguage picks the best console language of an
// Accept-Language header by its q values (English when none fits).
func fromAcceptLanguage(h string) Lang {
	best, bestQ := English, -1.0
	for i, part := range strings.Split(h, ",") {
		if i >= 20 {
			break
		}
		tag, params, _ := strings.Cut(part, ";")
		l := parseLang(tag)
		if l == "" {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		if q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// lang is the language of r: the visitor's choice (cookie), else the
// browser's Accept-Language.
func (c *Console) lang(r *http.Request) Lang {
	if ck, err := r.Cookie(langCookie); err == nil {
		if l := parseLang(ck.Value); l != "" {
			return l
		}
	}
	return fromAcceptLanguage(r.Header.Get("Accept-Language"))
}
