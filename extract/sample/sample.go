// Package sample makes deterministic synthetic CMIS data for the extract
// step, the first step of the cmissync pipeline: the rows of the three CMIS
// views (module groups, group members, group tutors) together with the
// Moodle side a demo or a test needs (courses, module mappings, students and
// staff). It writes the views as tables in a SQLite or MySQL/MariaDB
// database, where the default extraction queries read them, or as the CSV
// files of the CSV source. `cmissync demo` and the tests of every step use
// it; nothing in a production run does.
package sample

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Spec describes a dataset. Counts vary in a fixed pattern so the data is
// not uniform, yet the totals are predictable:
//   - every course takes ModulesPerCourse modules; SharedModules of those
//     course slots take a module of another course instead of a module of
//     their own, so that many modules are mapped to two courses;
//   - modules alternate between GroupsPerModule and GroupsPerModule-1 groups
//     (at least 1), coded SEM01, LAB02, SEM03, ...: every module has a SEM01,
//     so every course with two modules has the same group code twice;
//   - groups alternate between StudentsPerGroup+d and StudentsPerGroup-d
//     students (d = StudentsPerGroup/5), so the mean is StudentsPerGroup;
//   - every group has TutorsPerGroup tutors, and every second group one
//     more (a co-tutor) when TutorsPerGroup > 0.
type Spec struct {
	Seed             int64
	Courses          int
	ModulesPerCourse int
	GroupsPerModule  int
	StudentsPerGroup int
	TutorsPerGroup   int
	SharedModules    int // course slots that take a module mapped to another course too (at most Courses; none when ModulesPerCourse < 2)
}

// Demo is the small dataset of `cmissync demo`: 3 courses of 2 modules (one
// module shared by two courses, and every course taking two modules that
// both have a group SEM01), 2 or 3 groups per module, 5 to 7 students and 1
// or 2 tutors per group.
func Demo() Spec {
	return Spec{Seed: 1, Courses: 3, ModulesPerCourse: 2, GroupsPerModule: 3, StudentsPerGroup: 6, TutorsPerGroup: 1, SharedModules: 1}
}

// Large is a dataset the size of a large university: 5,000 mapped courses
// (20,000 mappings of 16,000 modules), 40,000 groups, 600,000 student and
// 60,000 tutor memberships.
func Large() Spec {
	return Spec{Seed: 1, Courses: 5000, ModulesPerCourse: 4, GroupsPerModule: 3, StudentsPerGroup: 15, TutorsPerGroup: 1, SharedModules: 4000}
}

// XL is a dataset the size of the largest CMIS site: 14,000 mapped
// courses (56,000 mappings of 44,800 modules), 112,000 groups, 1,456,000
// student and 168,000 tutor memberships, in the proportions of Large (a
// module in four courses out of five shared with another course, 2 or 3
// groups a module) with groups of 13 students on average; staged, that is
// 140,000 groups and about 2,030,000 memberships.
func XL() Spec {
	return Spec{Seed: 1, Courses: 14000, ModulesPerCourse: 4, GroupsPerModule: 3, StudentsPerGroup: 13, TutorsPerGroup: 1, SharedModules: 11200}
}

// Dataset is the generated data. The view rows hold values in the order of
// the staging dump columns.
type Dataset struct {
	ModuleGroups [][]string // modulecode, groupcode, modulename, groupname
	Members      [][]string // modulecode, groupcode, studentid
	Tutors       [][]string // modulecode, groupcode, staffid
	Courses      []Course
	Mappings     []Mapping
	Students     []Person
	Staff        []Person
}

// Course is a Moodle course that takes groups from CMIS modules.
type Course struct {
	ShortName, FullName string
}

// Mapping says that a Moodle course takes the groups of a CMIS module.
type Mapping struct {
	CourseShortName, ModuleCode string
}

// Person is a student or a member of staff as Moodle knows them; IDNumber
// is the CMIS id (8 digits for students, "S" and 6 digits for staff).
type Person struct {
	IDNumber, Username, FirstName, LastName, Email string
}

type module struct {
	code, name string
	groups     int
}

// Generate builds the dataset of a spec. The same spec always gives the
// same dataset.
func Generate(s Spec) Dataset {
	s = clampSpec(s)
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 0x636d697373796e63))
	var d Dataset

	// Modules and courses. Module codes are unique by construction: the
	// department cycles fastest, the number grows.
	depts := rng.Perm(len(departments))
	numberBase := 1000 + rng.IntN(50)
	var modules []module
	newModule := func() int {
		i := len(modules)
		dept := departments[depts[i%len(depts)]]
		code := dept.code + strconv.Itoa(numberBase+i/len(depts))
		name := fmt.Sprintf(titles[rng.IntN(len(titles))], dept.topics[rng.IntN(len(dept.topics))])
		groups := s.GroupsPerModule - i%2
		modules = append(modules, module{code: code, name: name, groups: max(groups, 1)})
		return i
	}
	home := make([]int, s.Courses) // slot-0 module of each course
	slots := make([][]int, s.Courses)
	sharedFrom := s.Courses - s.SharedModules // courses from here take a shared module in their last slot
	for c := 0; c < s.Courses; c++ {
		for k := 0; k < s.ModulesPerCourse; k++ {
			if k == s.ModulesPerCourse-1 && c >= sharedFrom {
				slots[c] = append(slots[c], -1) // filled below, once all home modules exist
				continue
			}
			slots[c] = append(slots[c], newModule())
		}
		home[c] = slots[c][0]
	}
	for c := sharedFrom; c < s.Courses; c++ {
		slots[c][s.ModulesPerCourse-1] = home[(c+1)%s.Courses]
	}
	for c := 0; c < s.Courses; c++ {
		m := modules[home[c]]
		course := Course{ShortName: m.code + "_25-26", FullName: m.name + " (2025-26)"}
		d.Courses = append(d.Courses, course)
		for _, mi := range slots[c] {
			d.Mappings = append(d.Mappings, Mapping{CourseShortName: course.ShortName, ModuleCode: modules[mi].code})
		}
	}

	// Groups, and the size of every group.
	nGroups := 0
	for _, m := range modules {
		nGroups += m.groups
	}
	studentsOf := func(g int) int {
		dv := s.StudentsPerGroup / 5
		if g == nGroups-1 && nGroups%2 == 1 {
			dv = 0 // the unpaired last group keeps the mean exact
		}
		if g%2 == 1 {
			dv = -dv
		}
		return max(s.StudentsPerGroup+dv, 0)
	}
	tutorsOf := func(g int) int {
		if s.TutorsPerGroup <= 0 {
			return 0
		}
		return s.TutorsPerGroup + g%2
	}
	nMembers, nTutors, maxStudents, maxTutors := 0, 0, 0, 0
	for g := 0; g < nGroups; g++ {
		nMembers += studentsOf(g)
		nTutors += tutorsOf(g)
		maxStudents = max(maxStudents, studentsOf(g))
		maxTutors = max(maxTutors, tutorsOf(g))
	}

	// People: each student is in about five groups, each tutor in about six.
	d.Students = people(rng, max(nMembers/5, 2*maxStudents, 12), false)
	d.Staff = people(rng, max(nTutors/6, 2*maxTutors, 4), true)

	d.ModuleGroups = make([][]string, 0, nGroups)
	memberCells := make([]string, 3*nMembers)
	tutorCells := make([]string, 3*nTutors)
	d.Members = make([][]string, 0, nMembers)
	d.Tutors = make([][]string, 0, nTutors)
	g := 0
	for _, m := range modules {
		for k := 0; k < m.groups; k++ {
			kind, label := "SEM", "Seminar"
			if k%2 == 1 {
				kind, label = "LAB", "Lab"
			}
			num := fmt.Sprintf("%02d", k+1)
			code := kind + num
			d.ModuleGroups = append(d.ModuleGroups, []string{m.code, code, m.name, label + " Group " + num})
			start := rng.IntN(len(d.Students))
			for i := 0; i < studentsOf(g); i++ {
				row := memberCells[:3:3]
				memberCells = memberCells[3:]
				row[0], row[1], row[2] = m.code, code, d.Students[(start+i)%len(d.Students)].IDNumber
				d.Members = append(d.Members, row)
			}
			start = rng.IntN(len(d.Staff))
			for i := 0; i < tutorsOf(g); i++ {
				row := tutorCells[:3:3]
				tutorCells = tutorCells[3:]
				row[0], row[1], row[2] = m.code, code, d.Staff[(start+i)%len(d.Staff)].IDNumber
				d.Tutors = append(d.Tutors, row)
			}
			g++
		}
	}
	return d
}

func clampSpec(s Spec) Spec {
	s.Courses = max(s.Courses, 0)
	s.ModulesPerCourse = max(s.ModulesPerCourse, 1)
	s.GroupsPerModule = max(s.GroupsPerModule, 1)
	s.StudentsPerGroup = max(s.StudentsPerGroup, 0)
	s.TutorsPerGroup = max(s.TutorsPerGroup, 0)
	s.SharedModules = min(max(s.SharedModules, 0), s.Courses)
	if s.ModulesPerCourse < 2 || s.Courses < 2 {
		s.SharedModules = 0
	}
	return s
}

// people makes n people with unique ids and usernames. Students have
// 8-digit ids and usernames of letters and digits; staff have "S" and 6
// digits, and the lower-cased id as username.
func people(rng *rand.Rand, n int, staff bool) []Person {
	out := make([]Person, n)
	var base int
	if staff {
		base = 100000 + rng.IntN(max(899999-n, 1))
	} else {
		base = 10000000 + rng.IntN(max(89999999-n, 1))
	}
	for i := range out {
		first := firstNames[rng.IntN(len(firstNames))]
		last := lastNames[rng.IntN(len(lastNames))]
		p := Person{FirstName: first, LastName: last}
		if staff {
			p.IDNumber = "S" + strconv.Itoa(base+i)
			p.Username = strings.ToLower(p.IDNumber)
			p.Email = asciiLetters(first) + "." + asciiLetters(last) + "." + strconv.Itoa(i) + "@staff.example.ac.uk"
		} else {
			p.IDNumber = strconv.Itoa(base + i)
			prefix := asciiLetters(first)[:1] + asciiLetters(last)
			if len(prefix) > 8 {
				prefix = prefix[:8]
			}
			p.Username = prefix + strconv.Itoa(i)
			p.Email = p.Username + "@student.example.ac.uk"
		}
		out[i] = p
	}
	return out
}

// asciiLetters lower-cases a name and folds it to ASCII letters for
// usernames and addresses: "Zoë" gives "zoe", "O'Brien" gives "obrien".
func asciiLetters(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if f, ok := fold[r]; ok {
			b.WriteString(f)
		} else if r >= 'a' && r <= 'z' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var fold = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ä': "a", 'ã': "a", 'å': "a", 'ç': "c", 'č': "c", 'è': "e", 'é': "e",
	'ê': "e", 'ë': "e", 'ì': "i", 'í': "i", 'î': "i", 'ï': "i", 'ł': "l", 'ñ': "n", 'ń': "n", 'ò': "o",
	'ó': "o", 'ô': "o", 'ö': "o", 'ø': "o", 'ő': "o", 'ş': "s", 'š': "s", 'ù': "u", 'ú': "u", 'û': "u",
	'ü': "u", 'ý': "y", 'ž': "z", 'ß': "ss", 'æ': "ae", 'œ': "oe",
}

var firstNames = []string{
	"Zoë", "José", "Chloé", "Siobhán", "Łukasz", "Renée", "François", "Björn", "Søren", "Ana",
	"Mohammed", "Priya", "Wei", "Olivia", "Jack", "Amelia", "Harry", "Isla", "Oliver", "Emily",
	"George", "Ava", "Noah", "Mia", "Leo", "Grace", "Arjun", "Fatima", "Kwame", "Yuki",
	"Tomás", "Inès", "Jürgen", "Ayşe", "Nikolaj", "Hannah", "Daniel", "Sofia", "Ethan", "Ruby",
}

var lastNames = []string{
	"Müller", "García", "O'Brien", "Østergaard", "Kowalski", "Nováková", "Lefèvre", "Şahin", "Smith", "Jones",
	"Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Roberts", "Johnson", "Patel",
	"Khan", "Chen", "Wang", "Singh", "Okafor", "Mensah", "Walker", "Wright", "Hughes", "Green",
	"Hall", "Wood", "Clarke", "Jackson", "Martínez", "Rossi", "Dubois", "Nguyen", "Ahmed", "Murphy",
}

type department struct {
	code   string
	topics []string
}

var departments = []department{
	{"COMP", []string{"Algorithms", "Databases", "Operating Systems", "Machine Learning", "Software Engineering"}},
	{"MATH", []string{"Linear Algebra", "Real Analysis", "Probability", "Number Theory", "Topology"}},
	{"PHYS", []string{"Quantum Mechanics", "Electromagnetism", "Thermodynamics", "Astrophysics", "Optics"}},
	{"CHEM", []string{"Organic Chemistry", "Spectroscopy", "Catalysis", "Physical Chemistry", "Polymers"}},
	{"BIOL", []string{"Genetics", "Ecology", "Cell Biology", "Microbiology", "Evolution"}},
	{"ECON", []string{"Microeconomics", "Macroeconomics", "Econometrics", "Game Theory", "Public Finance"}},
	{"HIST", []string{"Medieval Europe", "the British Empire", "the Cold War", "Early Modern Science", "Ancient Rome"}},
	{"ENGL", []string{"Shakespeare", "the Victorian Novel", "Modernist Poetry", "Creative Writing", "Old English"}},
	{"LAWS", []string{"Contract Law", "Tort Law", "Public Law", "Human Rights", "Company Law"}},
	{"MECH", []string{"Fluid Mechanics", "Dynamics", "Materials", "Heat Transfer", "Design"}},
	{"ELEC", []string{"Circuits", "Signals and Systems", "Control", "Power Electronics", "Communications"}},
	{"PSYC", []string{"Cognition", "Developmental Psychology", "Social Psychology", "Neuroscience", "Research Methods"}},
	{"GEOG", []string{"Climate", "Urban Geography", "Geomorphology", "GIS", "Development"}},
	{"ARCH", []string{"Architectural History", "Studio Design", "Construction", "Urbanism", "Theory"}},
	{"MUSI", []string{"Harmony", "Counterpoint", "Musicology", "Composition", "Música Popular"}},
	{"PHIL", []string{"Ethics", "Logic", "Metaphysics", "Philosophy of Mind", "Épistémologie"}},
	{"FREN", []string{"Littérature française", "Langue française", "Cinéma", "Traduction", "Société et Culture"}},
	{"SPAN", []string{"Literatura española", "Cultura y Sociedad", "Traducción", "Historia de América Latina", "Lingüística"}},
	{"GERM", []string{"Deutsche Literatur", "Übersetzung", "Film", "Sprachwissenschaft", "Kultur"}},
	{"STAT", []string{"Statistical Inference", "Regression", "Bayesian Methods", "Time Series", "Sampling"}},
}

var titles = []string{
	"Introduction to %s",
	"Foundations of %s",
	"Advanced %s",
	"Topics in %s",
	"%s in Practice",
	"%s: Theory and Method",
}
