// Package report turns the outcome of one pipeline step into the email that support staff
// read, and delivers it.
//
// Each step of a cmissync run (extract, stage, load) that ends with failures, or stops, hands
// this package one Report: the step's summary counts, any step-level error, advice on what to
// run next, and one Failure per item that did not make it (the course and group by name and
// id, the user, the Moodle web-service function, the parameters sent and Moodle's answer, and
// the likely fix in words). Render lays that out as a plain-text part, an HTML part and, when
// there are more failures than fit in the message, a CSV attachment with all of them. Mailer
// sends the result over SMTP and, when it cannot (or SMTP is not configured), keeps the
// message on disk as an .eml file and says where.
//
// Secrets never reach a report: web-service tokens and passwords are scrubbed from every
// field before rendering, whatever the caller passed in, and the SMTP password is kept out of
// both the message and the errors returned.
package report
