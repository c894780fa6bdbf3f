//! The fakes keep the promises their AWS adapters keep; the use-case tests rely on that.

use domain::{LeadId, RequestId};
use testkit::{FakeKeyService, MemoryObjects};
use usecases::ports::{IdentifierKind, KeyService, Objects};

/// The fake key service binds a data key to its subject (as KMS's encryption context
/// does, R5.2) and keys blind indexes per kind (R5.3): the use-case tests rely on it.
#[tokio::test]
async fn a_data_key_opens_only_for_its_own_subject_and_blind_indexes_are_keyed_per_kind() {
    let keys = FakeKeyService::new();
    let (a, b) = (LeadId::new(), LeadId::new());
    let (key, wrapped) = keys.generate_data_key(&a).await.unwrap();
    let again = keys.unwrap_data_key(&a, &wrapped).await.unwrap();
    let sealed = key.seal(b"aad", b"secret").unwrap();
    assert_eq!(&*again.open(b"aad", &sealed).unwrap(), b"secret");
    assert!(keys.unwrap_data_key(&b, &wrapped).await.is_err());
    let request = RequestId::new();
    assert!(keys.unwrap_request_key(&request, &wrapped).await.is_err());

    let email = keys.blind_index(IdentifierKind::Email, "x").await.unwrap();
    let phone = keys.blind_index(IdentifierKind::Phone, "x").await.unwrap();
    assert_ne!(email, phone);
    assert_eq!(
        email,
        keys.blind_index(IdentifierKind::Email, "x").await.unwrap()
    );
}

/// The fake bucket deletes every version and shows an upload only when complete, as S3
/// does: the use-case tests of R3.2 and R4.5 rely on it.
#[tokio::test]
async fn deleting_an_object_removes_every_version_and_uploads_appear_only_when_complete() {
    let bucket = MemoryObjects::new();
    bucket
        .put("recordings/a/1.audio", b"one".to_vec())
        .await
        .unwrap();
    bucket
        .put("recordings/a/1.audio", b"two".to_vec())
        .await
        .unwrap();
    bucket
        .put("recordings/b/2.audio", b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(
        bucket
            .count_versions("recordings/a/1.audio", true)
            .await
            .unwrap(),
        2
    );

    let mut upload = bucket
        .start_upload("exports/r.zip", "application/zip")
        .await
        .unwrap();
    upload.part(b"zip".to_vec()).await.unwrap();
    assert!(bucket.get("exports/r.zip").await.unwrap().is_none());
    assert_eq!(upload.complete().await.unwrap(), 3);
    assert_eq!(bucket.open_uploads(), 0);

    assert_eq!(
        bucket
            .delete_all_versions_under("recordings/a/")
            .await
            .unwrap(),
        2
    );
    assert_eq!(bucket.keys(), vec!["exports/r.zip", "recordings/b/2.audio"]);
}
