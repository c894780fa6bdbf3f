//! The request records of a period, for the accountability figures
//! (`usecases::dsar::figures`, `GET /v1/admin/stats`): a scan of the request items
//! (`kind = dsar_request`) with a receipt-time filter, read by the staff role only (it may
//! scan the table for the analytics export already). Request records carry no content.

use async_trait::async_trait;
use chrono::{Days, NaiveDate};

use super::dsar::DsarStore;
use super::dynamo::{failure, s};
use domain::retention::berlin_date;
use usecases::dsar::figures::RequestHistory;
use usecases::dsar::records::RequestRecord;
use usecases::ports::{Retry, StoreError};

#[async_trait]
impl RequestHistory for DsarStore {
    async fn received_between(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RequestRecord>, StoreError> {
        // `received_at` is stored as RFC 3339 in UTC: a string range a day wider than the
        // Berlin days on each side, then the exact Berlin day below.
        let lo = from
            .checked_sub_days(Days::new(1))
            .unwrap_or(from)
            .to_string();
        let hi = to.checked_add_days(Days::new(2)).unwrap_or(to).to_string();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .scan()
                .table_name(self.table())
                .filter_expression("kind = :k AND received_at BETWEEN :lo AND :hi")
                .expression_attribute_values(":k", s("dsar_request"))
                .expression_attribute_values(":lo", s(lo.clone()))
                .expression_attribute_values(":hi", s(hi.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failure("scan_requests", e))?;
            for item in page.items() {
                let record: RequestRecord =
                    serde_dynamo::from_item(item.clone()).map_err(|e| StoreError {
                        operation: "scan_requests",
                        retry: Retry::Permanent,
                        source: Some(Box::new(e)),
                    })?;
                let day = berlin_date(record.received_at);
                if day >= from && day <= to {
                    out.push(record);
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}
